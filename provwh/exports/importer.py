"""``provwh import FILE``: Flowcept / provwh batch files, or OpenLineage event files.

OpenLineage events (one JSON per line) are turned into task and workflow records: one task per
run, timed by its START and COMPLETE / FAIL / ABORT events, the parent run facet naming the
workflow. Events written by ``provwh export openlineage`` carry a ``provwh`` facet that
restores the original ids and used / generated dicts. The records then go through the Loader
like any batch file (exactly once: the converted file's hash is in the ledger).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any

import orjson

from provwh.core.serialize import dumps, dumps_exact
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


def events_to_records(
    events: list[dict[str, Any]],
    workflow_runs: Any = (),
    ended_runs: Any = (),
) -> list[dict[str, Any]]:
    """Task records (one per run id) and workflow records (one per parent run).

    A run that other runs name as their parent is their workflow, timed by its own events;
    a ``provwh`` facet's ``record`` / ``workflow`` is restored whole. ``workflow_runs``: run
    ids known to be workflows already (events received apart from their children's);
    ``ended_runs``: runs whose end is stored already, whose START leaves their status alone.
    """
    parents = {
        ((ev.get("run") or {}).get("facets") or {}).get("parent", {}).get("run", {}).get("runId")
        for ev in events
    } | set(workflow_runs)
    ended = set(ended_runs)
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
                {"type": "workflow", "workflow_id": own.get("workflow_id") or rid}),
                rid in ended)  # fmt: skip
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
        _task_event(ev, facets, own, tasks, workflows, rid in ended)
    return [*workflows.values(), *tasks.values()]


def _workflow_event(
    ev: dict[str, Any], own: dict[str, Any], wf: dict[str, Any], ended: bool = False
) -> None:
    if isinstance(own.get("workflow"), dict):
        wf.update(own["workflow"])
        return
    name = (ev.get("job") or {}).get("name")
    if name and name != wf["workflow_id"]:
        wf["name"] = name
    _times(wf, ev, ended)


def _times(rec: dict[str, Any], ev: dict[str, Any], ended: bool = False) -> None:
    """A run's START sets its start (RUNNING until it ends, unless ``ended``: its end is
    stored already); its end event, end and status."""
    kind = ev.get("eventType")
    if kind == "START":
        rec["started_at"] = ev.get("eventTime")
        if not ended:
            rec.setdefault("status", "RUNNING")
    elif kind in _END_STATUS:
        rec["ended_at"] = ev.get("eventTime")
        rec["status"] = _END_STATUS[kind]


def _task_event(ev, facets, own, tasks, workflows, ended=False) -> None:
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
    _times(rec, ev, ended)
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


def run_event_error(ev: Any) -> str | None:
    """Why ``ev`` is not an OpenLineage run event this importer takes, or None."""
    if not isinstance(ev, dict):
        return f"an event is a JSON object, got {type(ev).__name__}"
    if not isinstance(ev.get("eventType"), str) or not ev["eventType"]:
        return "a run event needs an eventType (START, RUNNING, COMPLETE, FAIL, ABORT...)"
    run = ev.get("run")
    if not isinstance(run, dict) or not isinstance(run.get("runId"), str) or not run["runId"]:
        return "a run event needs run.runId"
    job = ev.get("job")
    if job is not None and not isinstance(job, dict):
        return "job must be an object"
    for key in ("inputs", "outputs"):
        if ev.get(key) is not None and not isinstance(ev[key], list):
            return f"{key} must be a list of datasets"
    facets = run.get("facets")
    if facets is not None and not isinstance(facets, dict):
        return "run.facets must be an object"
    return None


def event_hash(ev: dict[str, Any]) -> str:
    """The ledger key of one event: its content (keys sorted), whatever its formatting."""
    return hashlib.sha256(b"openlineage-event\n" + dumps_exact(ev, sort_keys=True)).hexdigest()


def parent_run_ids(events: list[dict[str, Any]]) -> set[str]:
    """The run ids the events name as their parent (their workflows)."""
    found = set()
    for ev in events:
        rid = (((ev.get("run") or {}).get("facets") or {}).get("parent") or {}).get("run", {})
        if isinstance(rid, dict) and isinstance(rid.get("runId"), str):
            found.add(rid["runId"])
    return found


def load_events(
    events: list[dict[str, Any]],
    loader: Any,
    workflow_runs: Any = (),
    ended_runs: Any = (),
) -> Any:
    """Load run events one by one, each exactly once by its content (``event_hash`` is its
    chunk's ledger key: an event received again, in any batch, is skipped), then derive
    lineage. Events of one run received apart merge into one task (the warehouse merges a
    record's parts); ``workflow_runs`` / ``ended_runs`` as in ``events_to_records``, known
    from the database. Returns the LoadStats total (``batches``: events loaded,
    ``skipped``: events loaded before)."""
    from provwh.warehouse.loader import LoadStats
    from provwh.warehouse.normalize import normalize_chunk
    from provwh.warehouse.reader import Chunk

    workflows = set(workflow_runs) | parent_run_ids(events)
    ended = set(ended_runs)
    total = LoadStats()
    for ev in events:
        rid = ev["run"]["runId"]
        records = events_to_records([ev], workflows, ended)
        lines = [(i + 1, dumps(r)) for i, r in enumerate(records)]
        chunk = Chunk(f"openlineage:{rid}", 0, event_hash(ev), lines, sum(len(b) for _, b in lines))
        total.add(loader.load_normalized(normalize_chunk(chunk)))
        if ev.get("eventType") in _END_STATUS:
            ended.add(rid)
    loader.derive_lineage()
    total.files = 0
    return total


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
