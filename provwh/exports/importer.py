"""``provwh import FILE``: Flowcept / provwh batch files, or OpenLineage event files.

OpenLineage events (one JSON per line) are turned into task and workflow records: one task per
run, timed by its START and COMPLETE / FAIL / ABORT events, the parent run facet naming the
workflow. Events written by ``provwh export openlineage`` carry a ``provwh`` facet that
restores the original ids and used / generated dicts. The records then go through the Loader
like any batch file (exactly once: the converted file's hash is in the ledger).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import orjson

from provwh.exports.source import ExportError
from provwh.transport.batches import write_batch

OPENLINEAGE, FLOWCEPT = "openlineage", "flowcept"
_END_STATUS = {"COMPLETE": "FINISHED", "FAIL": "ERROR", "ABORT": "ABORTED"}


def detect(path: str) -> str:
    """``openlineage`` when the first record is a run event, else ``flowcept``."""
    if path.endswith(".parquet"):
        return FLOWCEPT
    with open(path, "rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                first = orjson.loads(line)
            except orjson.JSONDecodeError:
                return FLOWCEPT  # the loader reports its bad lines as rejects
            if isinstance(first, dict) and "eventType" in first and "run" in first:
                return OPENLINEAGE
            return FLOWCEPT
    return FLOWCEPT


def _dataset_value(ds: dict[str, Any]) -> str:
    """One string for a dataset: its name within its namespace, joined by one ``/``.

    ``s3://bucket`` + ``raw/a.csv`` and ``s3://bucket`` + ``/raw/a.csv`` both give
    ``s3://bucket/raw/a.csv``; a file dataset is its path.
    """
    ns, name = ds.get("namespace") or "", ds.get("name") or ""
    if ns in ("", "file"):
        return name
    return f"{ns.rstrip('/')}/{name.lstrip('/')}" if name else ns


def events_to_records(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Task records (one per run id) and workflow records (one per parent run).

    A run that other runs name as their parent is their workflow, timed by its own events;
    a ``provwh`` facet's ``record`` / ``workflow`` is restored whole.
    """
    parents = {
        ((ev.get("run") or {}).get("facets") or {}).get("parent", {}).get("run", {}).get("runId")
        for ev in events
    }
    tasks: dict[str, dict[str, Any]] = {}
    workflows: dict[str, dict[str, Any]] = {}
    for ev in events:
        run = ev.get("run") or {}
        rid = run.get("runId")
        if not rid:
            continue
        facets = run.get("facets") or {}
        own = facets.get("provwh") or {}
        if isinstance(own.get("workflow"), dict) or rid in parents:
            _workflow_event(ev, own, workflows.setdefault(
                own.get("workflow_id") or rid,
                {"type": "workflow", "workflow_id": own.get("workflow_id") or rid}))  # fmt: skip
            continue
        if isinstance(own.get("record"), dict):
            tasks[rid] = {**own["record"], "type": "task"}
            wf_id = own["record"].get("workflow_id")
            if wf_id:
                wf = workflows.setdefault(wf_id, {"type": "workflow", "workflow_id": wf_id})
                name = ((facets.get("parent") or {}).get("job") or {}).get("name")
                if name and name != wf_id:
                    wf.setdefault("name", name)
            continue
        _task_event(ev, facets, own, tasks, workflows)
    return [*workflows.values(), *tasks.values()]


def _workflow_event(ev: dict[str, Any], own: dict[str, Any], wf: dict[str, Any]) -> None:
    if isinstance(own.get("workflow"), dict):
        wf.update(own["workflow"])
        return
    name = (ev.get("job") or {}).get("name")
    if name and name != wf["workflow_id"]:
        wf["name"] = name
    _times(wf, ev)


def _times(rec: dict[str, Any], ev: dict[str, Any]) -> None:
    """A run's START sets its start (RUNNING until it ends); its end event, end and status."""
    kind = ev.get("eventType")
    if kind == "START":
        rec["started_at"] = ev.get("eventTime")
        rec.setdefault("status", "RUNNING")
    elif kind in _END_STATUS:
        rec["ended_at"] = ev.get("eventTime")
        rec["status"] = _END_STATUS[kind]


def _task_event(ev, facets, own, tasks, workflows) -> None:
    """A run event of a foreign producer (or of an older provwh export)."""
    rid = ev["run"]["runId"]
    parent = facets.get("parent") or {}
    rec = tasks.setdefault(rid, {"type": "task", "task_id": own.get("task_id") or rid})
    wf_id = own.get("workflow_id") or (parent.get("run") or {}).get("runId")
    if wf_id:
        rec["workflow_id"] = wf_id
        wf = workflows.setdefault(wf_id, {"type": "workflow", "workflow_id": wf_id})
        name = (parent.get("job") or {}).get("name")
        if name and name != wf_id:
            wf.setdefault("name", name)
    for key in ("campaign_id", "hostname", "user"):
        if own.get(key):
            rec[key] = own[key]
            if key == "campaign_id" and wf_id:
                workflows[wf_id]["campaign_id"] = own[key]
    rec["activity_id"] = own.get("activity_id") or (ev.get("job") or {}).get("name")
    _times(rec, ev)
    error = facets.get("errorMessage") or {}
    if isinstance(error, dict) and error.get("message"):
        trace = error.get("stackTrace")
        rec["stderr"] = error["message"] + (f"\n{trace}" if trace else "")
    if own.get("status"):
        rec["status"] = own["status"]
    if "used" in own or "generated" in own:
        for key in ("used", "generated"):
            if own.get(key) is not None:
                rec[key] = own[key]
    else:
        for key, field in (("used", "inputs"), ("generated", "outputs")):
            found = [_dataset_value(d) for d in ev.get(field) or [] if isinstance(d, dict)]
            if found:
                rec[key] = {f"{field[:-1]}_{i}": v for i, v in enumerate(found)}


def read_events(path: str) -> list[dict[str, Any]]:
    events = []
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                ev = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ExportError(f"{path}:{lineno}: not JSON ({exc})") from None
            if not isinstance(ev, dict) or "eventType" not in ev:
                raise ExportError(f"{path}:{lineno}: not an OpenLineage run event")
            events.append(ev)
    return events


def import_files(paths: list[str], targets: list[Any], group_records: int | None = None) -> Any:
    """Load each file (converted first when it holds OpenLineage events); LoadStats total."""
    from provwh.warehouse.loader import Loader

    for path in paths:
        if not os.path.isfile(path):
            raise ExportError(f"{path}: no such file")
    loader = Loader(targets, group_records=group_records)
    try:
        with tempfile.TemporaryDirectory(prefix="provwh-import-") as tmp:
            files = []
            for i, path in enumerate(paths):
                if detect(path) == OPENLINEAGE:
                    records = events_to_records(read_events(path))
                    converted = os.path.join(tmp, f"{i}-{os.path.basename(path)}.jsonl")
                    write_batch(converted, records, "jsonl", fsync=False)
                    files.append(converted)
                else:
                    files.append(path)
            total = loader.load_files(files)
        loader.derive_lineage()
    finally:
        loader.close()
    return total
