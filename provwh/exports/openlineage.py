"""OpenLineage run events of one workflow: one JSON per line, START then COMPLETE / FAIL.

Mapping: a task is a run (run id = the task id when it is a UUID, else a UUIDv5
of it, see ``run_id``), its activity the job, the workflow the parent run (``parent`` facet),
with START / closing events of its own around the tasks'; path-like used / generated strings
become input / output datasets. A ``provwh`` run facet carries the whole record (task or
workflow), so ``provwh import`` restores it as it was. A run not ended yet gets only its START.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import orjson

from provwh.exports import common
from provwh.exports.source import Source
from provwh.version import __version__

PRODUCER = f"https://github.com/provwh/provwh/tree/{__version__}"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PARENT_SCHEMA = "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet"
ERROR_SCHEMA = (
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
PROVWH_SCHEMA = "https://github.com/provwh/provwh/blob/main/docs/cli.md#openlineage"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:provwh")
DEFAULT_NAMESPACE = "provwh"
FAIL_STATUSES = frozenset({"ERROR", "FAILED", "FAILURE"})
ABORT_STATUSES = frozenset({"ABORTED", "KILLED", "CANCELLED", "CANCELED"})
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://([^/]*)(/.*)?$")


def run_id(ident: str) -> str:
    """The id itself when it is a UUID, else ``uuid5(uuid5(URL, "urn:provwh"), ident)``."""
    try:
        return str(uuid.UUID(str(ident)))
    except ValueError:
        return str(uuid.uuid5(NAMESPACE, str(ident)))


def dataset(value: Any) -> dict[str, str] | None:
    """A dataset for a path-like string (``/abs``, ``./rel``, ``~/x``, ``scheme://``)."""
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        return None
    m = _URL.match(value)
    if m:
        return {"namespace": f"{m.group(1)}://{m.group(2)}", "name": m.group(3) or "/"}
    if value.startswith(("/", "./", "../", "~/")):
        return {"namespace": "file", "name": value}
    return None


def _datasets(doc: Any) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        else:
            ds = dataset(node)
            if ds is not None and ds not in found:
                found.append(ds)

    walk(doc)
    return found


def _facet(schema: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": schema, **fields}


def _end_kind(status: str | None, ended: Any) -> str | None:
    """The closing event of a run: COMPLETE / FAIL / ABORT, or None while it runs."""
    status = (status or "").upper()
    if status in FAIL_STATUSES:
        return "FAIL"
    if status in ABORT_STATUSES:
        return "ABORT"
    if ended is not None or status == "FINISHED":
        return "COMPLETE"
    return None


def task_events(
    task: dict[str, Any], workflow: dict[str, Any], namespace: str = DEFAULT_NAMESPACE
) -> list[dict[str, Any]]:
    """START and (when ended) COMPLETE / FAIL / ABORT events of one task record (times in
    epoch seconds, as captured); the ``provwh`` facet carries the whole record."""
    wf_id = task.get("workflow_id")
    ids_only = _facet(PROVWH_SCHEMA, task_id=task["task_id"], workflow_id=wf_id)
    facets: dict[str, Any] = {"provwh": ids_only}
    if wf_id:
        facets["parent"] = _facet(
            PARENT_SCHEMA,
            run={"runId": run_id(wf_id)},
            job={"namespace": namespace, "name": workflow.get("name") or wf_id},
        )
    base = {
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_id(task["task_id"]), "facets": facets},
        "job": {"namespace": namespace, "name": task.get("activity_id") or task["task_id"]},
        "inputs": _datasets(task.get("used")),
    }
    start = common.epoch_iso(task.get("started_at") or task.get("submitted_at"))
    ended = common.epoch_iso(task.get("ended_at"))
    kind = _end_kind(task.get("status"), ended)
    # the whole record rides on the run's last event only (a file half the size)
    whole = {**facets, "provwh": {**ids_only, "record": task}}
    first = {"eventType": "START", "eventTime": start or ended, **base, "outputs": []}
    if kind is None:
        first["run"] = {"runId": base["run"]["runId"], "facets": whole}
        return [first]
    end = {"eventType": kind, "eventTime": ended or start, **base,
           "outputs": _datasets(task.get("generated"))}  # fmt: skip
    if kind == "FAIL" and task.get("stderr"):
        error = _facet(ERROR_SCHEMA, message=task["stderr"], programmingLanguage="python")
        whole["errorMessage"] = error
    end["run"] = {"runId": base["run"]["runId"], "facets": whole}
    return [first, end]


def workflow_events(
    workflow: dict[str, Any], namespace: str = DEFAULT_NAMESPACE
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The workflow's own run: its START, and its closing event when it ended (else None).
    The tasks' ``parent`` facets name this run; its ``provwh`` facet carries the record."""
    wf_id = workflow["workflow_id"]
    base = {
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {
            "runId": run_id(wf_id),
            "facets": {"provwh": _facet(PROVWH_SCHEMA, workflow_id=wf_id, workflow=workflow)},
        },
        "job": {"namespace": namespace, "name": workflow.get("name") or wf_id},
        "inputs": [],
        "outputs": [],
    }
    start = common.epoch_iso(workflow.get("started_at"))
    ended = common.epoch_iso(workflow.get("ended_at"))
    kind = _end_kind(workflow.get("status"), ended)
    close = None if kind is None else {"eventType": kind, "eventTime": ended or start, **base}
    return {"eventType": "START", "eventTime": start or ended, **base}, close


def export_openlineage(
    src: Source, workflow_id: str, namespace: str = DEFAULT_NAMESPACE
) -> Iterator[dict[str, Any]]:
    """The workflow's START, every event of its tasks in start order, then its closing
    event; streamed (tasks are read a chunk at a time)."""
    workflow = common.workflow_record(src, workflow_id)
    close = None
    if workflow is not None:
        start, close = workflow_events(workflow, namespace)
        if start["eventTime"] is not None:
            yield start
    for task in common.task_records(src, workflow_id):
        yield from task_events(task, workflow or {}, namespace)
    if close is not None and close["eventTime"] is not None:
        yield close


def dumps(event: dict[str, Any]) -> str:
    """One event as a line of JSON."""
    return orjson.dumps(event).decode() + "\n"
