"""The data objects' REST routes: ``/objects``, and ``/datasets`` and ``/models`` (the objects
of type ``dataset`` / ``ml_model``), as Flowcept 1.0.3's: metadata (the latest version of each
object; the payload only with ``include_data``, as ``{"$binary": {"base64": ...}}``), one
version, the history, the payload as bytes, queries, and ``DELETE /objects/{id}`` with the
server's token. Lists are sorted and paged in SQL (``offset`` / ``next_offset``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from provwh.serve import records
from provwh.serve.api import (
    FILTER_JSON,
    LIMIT,
    OFFSET,
    SORT,
    QueryBody,
    SortItem,
    db_of,
    json,
    run_query,
)
from provwh.serve.records import BadRequest, NotFound

router = APIRouter(prefix="/api/v1")

# route prefix -> (the object type it holds, None: every object; the name in messages)
KINDS: dict[str, tuple[str | None, str]] = {
    "objects": (None, "Object"),
    "datasets": ("dataset", "Dataset"),
    "models": ("ml_model", "Model"),
}
WITHOUT_DATA = {"data": 0}  # metadata: the payload column is not even read
DEFAULT_ORDER = [("created_at", 1)]  # Flowcept's: the first date field, ascending (then id)
INCLUDE_DATA = Query(False, description="also answer the payload (base64, as $binary)")


class ObjectQueryBody(QueryBody):
    """The query body, and ``include_data`` (the payload, as Flowcept's)."""

    include_data: bool = False


def _restrict(object_type: str | None) -> dict[str, Any]:
    return {} if object_type is None else {"object_type": object_type}


def _meta(
    db: Any, object_id: str, version: int | None, object_type: str | None, label: str, data: bool
) -> dict[str, Any]:
    """One version's record (the latest when ``version`` is None), else NotFound."""
    flt: dict[str, Any] = {"object_id": object_id}
    collection = "objects"
    if version is not None:
        flt["version"] = version
        collection = "object_history"
    found = db.query(flt, None if data else WITHOUT_DATA, 1, collection=collection)
    if not found or (object_type is not None and found[0].get("object_type") != object_type):
        at = "" if version is None else f", version={version}"
        raise NotFound(f"{label} not found: {object_id}{at}")
    return found[0]


def _download(
    db: Any, object_id: str, version: int | None, object_type: str | None, label: str
) -> Response:
    rec = _meta(db, object_id, version, object_type, label, data=True)
    payload = rec.get("data")
    if payload is None:
        raise NotFound(f"Object payload not available: {object_id}")
    name = f"{object_id}.bin" if version is None else f"{object_id}.v{version}.bin"
    return Response(
        bytes(payload), media_type="application/octet-stream", headers=records.attachment(name)
    )


def _add_routes(prefix: str, kind: str | None, label: str) -> None:
    tags = [prefix]

    @router.get(f"/{prefix}", tags=tags, name=f"list_{prefix}")
    def list_objects(
        limit: int = LIMIT,
        offset: int = OFFSET,
        object_id: str | None = None,
        workflow_id: str | None = None,
        task_id: str | None = None,
        type: str | None = Query(None, description="object type (objects only)"),
        object_type: str | None = Query(None, description="the same as type"),
        filter_json: str | None = FILTER_JSON,
        include_data: bool = INCLUDE_DATA,
        sort: str | None = SORT,
        db: Any = Depends(db_of),
    ) -> Response:
        """The latest version of each object matching the parameters, oldest first."""
        if type is not None and object_type is not None and type != object_type:
            raise BadRequest("type and object_type name different object types")
        given = type if type is not None else object_type
        if kind is not None and given is not None and given != kind:
            raise BadRequest(f"/{prefix} holds the objects of type {kind!r} only")
        flt = records.with_fields(
            records.filter_of(filter_json),
            object_id=object_id,
            workflow_id=workflow_id,
            task_id=task_id,
            object_type=kind or given,
        )
        order = records.sort_of(sort) or DEFAULT_ORDER

        def query(flt: Any, projection: Any, limit: int, sort: Any, skip: int) -> list:
            return db.query(flt, projection, limit, sort, collection="objects", skip=skip)

        fields = None if include_data else WITHOUT_DATA
        return json(records.page(query, flt, limit, offset, order, fields))

    @router.post(f"/{prefix}/query", tags=tags, name=f"query_{prefix}")
    def query_objects(body: ObjectQueryBody, db: Any = Depends(db_of)) -> Response:
        """The query body on the latest versions of the objects (oldest first by default)."""
        if body.sort is None and body.aggregation is None:
            order = [SortItem(field=f, order=o) for f, o in DEFAULT_ORDER]
            body = body.model_copy(update={"sort": order})
        fields = None if body.include_data else WITHOUT_DATA
        answer = run_query("objects", body, db, _restrict(kind), fields)
        if not body.include_data and body.aggregation is None:
            for item in answer["items"]:
                item.pop("data", None)
        return json(answer)

    @router.get(f"/{prefix}/{{object_id}}", tags=tags, name=f"get_{prefix}")
    def get_object(
        object_id: str, include_data: bool = INCLUDE_DATA, db: Any = Depends(db_of)
    ) -> Response:
        """The object's latest version."""
        return json(_meta(db, object_id, None, kind, label, include_data))

    @router.get(f"/{prefix}/{{object_id}}/versions/{{version}}", tags=tags,
                name=f"get_{prefix}_version")  # fmt: skip
    def get_version(
        object_id: str, version: int, include_data: bool = INCLUDE_DATA, db: Any = Depends(db_of)
    ) -> Response:
        """One version of the object."""
        return json(_meta(db, object_id, version, kind, label, include_data))

    @router.get(f"/{prefix}/{{object_id}}/history", tags=tags, name=f"{prefix}_history")
    def history(object_id: str, limit: int = LIMIT, db: Any = Depends(db_of)) -> Response:
        """Metadata of every stored version, latest first."""
        with db.hold():
            _meta(db, object_id, None, kind, label, data=False)
            items = db.get_object_history(object_id)
        return json(records.envelope(items[:limit], limit))

    @router.get(f"/{prefix}/{{object_id}}/download", tags=tags, name=f"download_{prefix}")
    def download(
        object_id: str,
        version: int | None = Query(None, description="a version (default: the latest)"),
        db: Any = Depends(db_of),
    ) -> Response:
        """The payload of the latest version (or of ``version``), as bytes."""
        return _download(db, object_id, version, kind, label)

    @router.get(f"/{prefix}/{{object_id}}/versions/{{version}}/download", tags=tags,
                name=f"download_{prefix}_version")  # fmt: skip
    def download_version(object_id: str, version: int, db: Any = Depends(db_of)) -> Response:
        """The payload of one version, as bytes."""
        return _download(db, object_id, version, kind, label)


for _prefix, (_type, _label) in KINDS.items():
    _add_routes(_prefix, _type, _label)


@router.delete("/objects/{object_id}", tags=["objects"])
def delete_object(object_id: str, request: Request, db: Any = Depends(db_of)) -> Response:
    """Delete an object with all its versions (needs the server's token)."""
    request.app.state.check_write(request)
    with db.hold():
        versions = len(db.get_object_history(object_id))
        if not versions:
            raise NotFound(f"Object not found: {object_id}")
        db.delete_object_keys("object_id", [object_id])
    return json({"deleted": {"objects": 1, "versions": versions}, "object_id": object_id})
