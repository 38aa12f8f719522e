"""The REST routes under ``/api/v1``: Flowcept 1.0.3's contract (routes, parameters, the
``{"items", "count", "limit"}`` envelope, the query body, ``{"detail": ...}`` errors), with
sorting, limits and paging done in SQL (``offset`` / ``next_offset``), and lineage
(``/tasks/{task_id}/upstream`` and ``/downstream``)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from provwh.serve import records
from provwh.serve.records import DEFAULT_LIMIT, MAX_LIMIT, BadRequest, NotFound
from provwh.version import __version__

router = APIRouter(prefix="/api/v1")

LIMIT = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="records per page (1..1000)")
OFFSET = Query(0, ge=0, description="records of the order to leave out (paging; not in Flowcept)")
SORT = Query(
    None,
    description="fields to sort by, comma separated, '-' for descending (default: by start"
    " time, then id; not in Flowcept)",
)
FILTER_JSON = Query(None, description="a Mongo-style filter, as a JSON object")


def db_of(request: Request) -> Any:
    return request.app.state.db


def json(value: Any, status: int = 200) -> Response:
    """A JSON response as the warehouse writes records (bytes and NaN kept, see records)."""
    return Response(records.json_bytes(value), status_code=status, media_type="application/json")


# --- health and info ------------------------------------------------------------------------


@router.get("/health/live", tags=["health"])
def live() -> Response:
    return json({"status": "ok"})


@router.get("/health/ready", tags=["health"])
def ready(db: Any = Depends(db_of)) -> Response:
    """Ready when the database answers; 503 ``degraded`` when it does not."""
    ok = db.liveness_test()
    body = {
        "status": "ready" if ok else "degraded",
        "services": {"database": {"engine": db.engine, "status": "ok" if ok else "down"}},
    }
    return json(body, 200 if ok else 503)


@router.get("/info", tags=["health"])
def info(request: Request, db: Any = Depends(db_of)) -> Response:
    state = request.app.state
    return json(
        {
            "service": "provwh",
            "version": __version__,
            "engine": db.engine,
            "writes": "token" if state.token else "refused",
            "lineage_receiver": "token" if state.lineage_token else "open",
        }
    )


# --- campaigns ------------------------------------------------------------------------------


@router.get("/campaigns", tags=["campaigns"])
def list_campaigns(limit: int = LIMIT, db: Any = Depends(db_of)) -> Response:
    """Campaigns (derived from workflows and tasks), most recently active first."""
    with db.hold():
        found = records.campaigns(db)
    return json(records.envelope(found[:limit], limit))


@router.get("/campaigns/{campaign_id}", tags=["campaigns"])
def get_campaign(campaign_id: str, db: Any = Depends(db_of)) -> Response:
    """The campaign's summary, its workflows and the summary of its tasks."""
    with db.hold():
        found = records.campaigns(db, campaign_id)
        if not found:
            raise NotFound(f"Campaign not found: {campaign_id}")
        workflows = db.workflow_query({"campaign_id": campaign_id})
        summary = db.task_summary({"campaign_id": campaign_id})
    return json({"campaign": found[0], "workflows": workflows, "task_summary": summary})


@router.delete("/campaigns/{campaign_id}", tags=["campaigns"])
def delete_campaign(campaign_id: str, request: Request, db: Any = Depends(db_of)) -> Response:
    """Delete a campaign's workflows, tasks and objects (needs the server's token)."""
    request.app.state.check_write(request)
    with db.hold():
        if not db.workflow_query({"campaign_id": campaign_id}, projection=["workflow_id"]):
            raise NotFound(f"Campaign not found: {campaign_id}")
        counts = db.delete_campaign_data(campaign_id)
    return json({"deleted": counts})


# --- workflows ------------------------------------------------------------------------------


@router.get("/workflows", tags=["workflows"])
def list_workflows(
    limit: int = LIMIT,
    offset: int = OFFSET,
    user: str | None = None,
    campaign_id: str | None = None,
    parent_workflow_id: str | None = None,
    name: str | None = None,
    status: str | None = None,
    filter_json: str | None = FILTER_JSON,
    sort: str | None = SORT,
    db: Any = Depends(db_of),
) -> Response:
    flt = records.with_fields(
        records.filter_of(filter_json),
        user=user,
        campaign_id=campaign_id,
        parent_workflow_id=parent_workflow_id,
        name=name,
        status=status,
    )
    return json(records.page(db.workflow_query, flt, limit, offset, records.sort_of(sort)))


class SortItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str = Field(min_length=1)
    order: Literal[1, -1] = 1


class AggregationItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operator: Literal["avg", "sum", "min", "max", "count"]
    field: str = Field(min_length=1)


class QueryBody(BaseModel):
    """Flowcept's query body, and ``offset`` for paging."""

    model_config = ConfigDict(extra="forbid")
    filter: dict[str, Any] | None = None
    projection: list[str] | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=0, le=MAX_LIMIT)
    offset: int = Field(0, ge=0)
    sort: list[SortItem] | None = None
    aggregation: list[AggregationItem] | None = None
    remove_json_unserializables: bool = True


def run_query(
    collection: str,
    body: QueryBody,
    db: Any,
    restrict: dict[str, Any] | None = None,
    projection: Any = None,
) -> dict[str, Any]:
    """The answer to a query body on ``collection``; ``restrict``: equality filters that
    apply too; ``projection``: what to read when the body names none (not for aggregations)."""
    sort = None if body.sort is None else [(s.field, s.order) for s in body.sort]
    flt = records.with_fields(body.filter or {}, **(restrict or {}))
    if body.aggregation is not None:
        if body.projection is not None and len(body.projection) > 1:
            raise BadRequest("When aggregation is provided, projection supports at most one field.")
        if body.offset:
            raise BadRequest("offset does not apply to an aggregation")
        aggregation = [(a.operator, a.field) for a in body.aggregation]
        items = db.query(flt, body.projection, body.limit, sort, aggregation, collection=collection)
        return records.envelope(items, body.limit)
    fields = body.projection if body.projection is not None else projection
    if body.limit == 0:  # Flowcept's "no limit"
        items = db.query(flt, fields, 0, sort, collection=collection, skip=body.offset)
        return {**records.envelope(items, 0), "offset": body.offset, "next_offset": None}

    def query(flt: Any, projection: Any, limit: int, sort: Any, skip: int) -> list:
        return db.query(flt, projection, limit, sort, collection=collection, skip=skip)

    return records.page(query, flt, body.limit, body.offset, sort, fields)


@router.post("/workflows/query", tags=["workflows"])
def query_workflows(body: QueryBody, db: Any = Depends(db_of)) -> Response:
    return json(run_query("workflows", body, db))


@router.get("/workflows/{workflow_id}", tags=["workflows"])
def get_workflow(workflow_id: str, db: Any = Depends(db_of)) -> Response:
    found = db.workflow_query({"workflow_id": workflow_id}, limit=1)
    if not found:
        raise NotFound(f"Workflow not found: {workflow_id}")
    return json(found[0])


@router.get("/workflows/{workflow_id}/dataflow", tags=["workflows"])
def workflow_dataflow(workflow_id: str, db: Any = Depends(db_of)) -> Response:
    """The workflow's tasks and the data linking them: data nodes (a value one task generated
    and another used), edges ``generated`` (task → data) and ``used`` (data → task)."""
    with db.hold():
        if not db.workflow_query({"workflow_id": workflow_id}, ["workflow_id"], 1):
            raise NotFound(f"Workflow not found: {workflow_id}")
        return json(db.dataflow(workflow_id))


@router.delete("/workflows/{workflow_id}", tags=["workflows"])
def delete_workflow(workflow_id: str, request: Request, db: Any = Depends(db_of)) -> Response:
    """Delete a workflow, its tasks and its objects (needs the server's token)."""
    request.app.state.check_write(request)
    with db.hold():
        if not db.workflow_query({"workflow_id": workflow_id}, projection=["workflow_id"]):
            raise NotFound(f"Workflow not found: {workflow_id}")
        counts = db.delete_workflow_data(workflow_id)
    return json({"deleted": counts})


# --- tasks ----------------------------------------------------------------------------------


@router.get("/tasks", tags=["tasks"])
def list_tasks(
    limit: int = LIMIT,
    offset: int = OFFSET,
    workflow_id: str | None = None,
    parent_task_id: str | None = None,
    campaign_id: str | None = None,
    task_id: str | None = None,
    status: str | None = None,
    activity_id: str | None = None,
    filter_json: str | None = FILTER_JSON,
    sort: str | None = SORT,
    db: Any = Depends(db_of),
) -> Response:
    flt = records.with_fields(
        records.filter_of(filter_json),
        workflow_id=workflow_id,
        parent_task_id=parent_task_id,
        campaign_id=campaign_id,
        task_id=task_id,
        status=status,
        activity_id=activity_id,
    )
    return json(records.page(db.task_query, flt, limit, offset, records.sort_of(sort)))


@router.get("/tasks/by_workflow/{workflow_id}", tags=["tasks"])
def tasks_by_workflow(
    workflow_id: str,
    limit: int = LIMIT,
    offset: int = OFFSET,
    sort: str | None = SORT,
    db: Any = Depends(db_of),
) -> Response:
    flt = {"workflow_id": workflow_id}
    return json(records.page(db.task_query, flt, limit, offset, records.sort_of(sort)))


@router.post("/tasks/query", tags=["tasks"])
def query_tasks(body: QueryBody, db: Any = Depends(db_of)) -> Response:
    return json(run_query("tasks", body, db))


@router.get("/tasks/{task_id}", tags=["tasks"])
def get_task(task_id: str, db: Any = Depends(db_of)) -> Response:
    found = db.task_query({"task_id": task_id}, limit=1)
    if not found:
        raise NotFound(f"Task not found: {task_id}")
    return json(found[0])


DEPTH = Query(None, ge=1, le=1000, description="steps to follow (default: all)")
KIND = Query(None, description="edge kinds to follow: explicit, parent, dataflow (default: all)")


def _related(db: Any, task_id: str, direction: str, depth: int | None, kind: list | None):
    with db.hold():
        if not db.task_query({"task_id": task_id}, projection=["task_id"], limit=1):
            raise NotFound(f"Task not found: {task_id}")
        walk = db.get_upstream if direction == "up" else db.get_downstream
        items = walk(task_id, depth, kind or None)
    return json({"task_id": task_id, "depth": depth, "items": items, "count": len(items)})


@router.get("/tasks/{task_id}/upstream", tags=["lineage"])
def upstream(
    task_id: str,
    depth: int | None = DEPTH,
    kind: list[str] | None = KIND,
    db: Any = Depends(db_of),
) -> Response:
    """Tasks this task depends on (explicit dependencies, its parent, data it used), nearest
    first, each with its ``depth``."""
    return _related(db, task_id, "up", depth, kind)


@router.get("/tasks/{task_id}/downstream", tags=["lineage"])
def downstream(
    task_id: str,
    depth: int | None = DEPTH,
    kind: list[str] | None = KIND,
    db: Any = Depends(db_of),
) -> Response:
    """Tasks depending on this task, nearest first, each with its ``depth``."""
    return _related(db, task_id, "down", depth, kind)


# --- stats ----------------------------------------------------------------------------------


@router.get("/stats/tasks/summary", tags=["stats"])
def tasks_summary(
    workflow_id: str | None = None,
    campaign_id: str | None = None,
    agent_id: str | None = None,
    filter_json: str | None = FILTER_JSON,
    db: Any = Depends(db_of),
) -> Response:
    """Count, status counts, per-activity durations and the time range of matching tasks."""
    flt = records.with_fields(
        records.filter_of(filter_json),
        workflow_id=workflow_id,
        campaign_id=campaign_id,
        agent_id=agent_id,
    )
    return json(db.task_summary(flt or None))


class TimeseriesBody(BaseModel):
    """Flowcept's timeseries body (``x`` is taken for ``x_field`` too, as Flowcept names it)."""

    model_config = ConfigDict(extra="forbid")
    filter: dict[str, Any] = Field(default_factory=dict)
    fields: list[str] = Field(min_length=1)
    x_field: str = Field("started_at", min_length=1,
                         validation_alias=AliasChoices("x_field", "x"))  # fmt: skip
    limit: int = Field(1000, ge=1, le=5000)


@router.post("/stats/timeseries", tags=["stats"])
def timeseries(body: TimeseriesBody, db: Any = Depends(db_of)) -> Response:
    """``{"rows": [{<x_field>, task_id, activity_id, <field>: value...}], "count"}``: the
    fields of the matching tasks (dotted paths: ``telemetry_at_end.cpu.percent_all``), the
    first ``limit`` by ``x_field`` (tasks without it last)."""
    rows = db.telemetry_timeseries(body.filter, body.fields, body.x_field, body.limit)
    return json({"rows": rows, "count": len(rows)})
