"""OpenLineage run events of one workflow: one JSON per line, START then COMPLETE / FAIL.

Mapping: a task is a run (run id = the task id when it is a UUID, else a UUIDv5
of it, see ``run_id``), its activity the job, the workflow the parent run (``parent`` facet);
path-like used / generated strings become input / output datasets. A ``provwh`` run facet
keeps the original ids and the used / generated dicts, so ``provwh import`` restores them.
A task not ended yet gets only its START event.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

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


def task_events(
    task: dict[str, Any], workflow: dict[str, Any], namespace: str = DEFAULT_NAMESPACE
) -> list[dict[str, Any]]:
    """START and (when ended) COMPLETE / FAIL / ABORT events of one task row."""
    used = json.loads(task["used_json"]) if task.get("used_json") else None
    generated = json.loads(task["generated_json"]) if task.get("generated_json") else None
    wf_id = task["workflow_id"]
    facets: dict[str, Any] = {
        "provwh": _facet(
            PROVWH_SCHEMA,
            task_id=task["task_id"],
            workflow_id=wf_id,
            campaign_id=task.get("campaign_id"),
            activity_id=task.get("activity_id"),
            status=task.get("status"),
            hostname=task.get("hostname"),
            user=task.get("user"),
            used=used,
            generated=generated,
        )
    }
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
        "inputs": _datasets(used),
    }
    start = common.iso(task.get("started_at") or task.get("submitted_at"))
    events = [{"eventType": "START", "eventTime": start or common.iso(task.get("ended_at")),
               **base, "outputs": []}]  # fmt: skip
    status = (task.get("status") or "").upper()
    ended = task.get("ended_at")
    if ended is not None or status == "FINISHED" or status in FAIL_STATUSES | ABORT_STATUSES:
        kind = "FAIL" if status in FAIL_STATUSES else "ABORT" if status in ABORT_STATUSES else (
            "COMPLETE")  # fmt: skip
        end = {"eventType": kind, "eventTime": common.iso(ended) or start, **base,
               "outputs": _datasets(generated)}  # fmt: skip
        if kind == "FAIL" and task.get("stderr"):
            error = _facet(ERROR_SCHEMA, message=task["stderr"], programmingLanguage="python")
            end["run"] = {
                "runId": base["run"]["runId"],
                "facets": {**facets, "errorMessage": error},
            }
        events.append(end)
    return events


def export_openlineage(
    src: Source, workflow_id: str, namespace: str = DEFAULT_NAMESPACE
) -> list[dict[str, Any]]:
    """Every event of the workflow's tasks, in task start order."""
    workflow = common.workflow_row(src, workflow_id) or {}
    events: list[dict[str, Any]] = []
    for task in common.workflow_tasks(src, workflow_id):
        events.extend(task_events(task, workflow, namespace))
    return events


def dumps(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, ensure_ascii=False, sort_keys=False) + "\n" for e in events)
