"""Provenance records as a report reads them: kinds, times, workflows, their tasks and objects.

Plain Python over record dicts, tolerant of records written by Flowcept (no ``type``, missing
times or statuses), and deterministic: the same records give the same numbers in the same
order, so the card can be compared line by line.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from provwh.core.model import TASK_TIME_FIELDS, merge_records, record_kind

STATUS_ORDER = ("FINISHED", "ERROR", "RUNNING", "SUBMITTED", "WAITING", "UNKNOWN")
OBJECT_TIME_FIELDS = ("created_at", "updated_at", "utc_timestamp", "timestamp")
NO_ACTIVITY = "(no activity_id)"


# -- records -------------------------------------------------------------------------------------


def to_epoch(value: Any) -> float | None:
    """Float epoch seconds from a number, an ISO string or a datetime (else None)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _normalized(rec: dict[str, Any]) -> dict[str, Any]:
    out = dict(rec)
    for key in TASK_TIME_FIELDS:
        if key in out:
            out[key] = to_epoch(out[key])
    status = out.get("status")
    out["status"] = str(status).upper() if status else "UNKNOWN"
    return out


def _object(rec: dict[str, Any]) -> dict[str, Any]:
    """An object record (a model, a dataset: Flowcept's ``object_id`` records) without its bytes:
    times as epoch seconds, ``storage_type`` and ``object_size_bytes`` filled in when known."""
    out = {k: v for k, v in rec.items() if k != "data"}
    for key in OBJECT_TIME_FIELDS:
        if key in out:
            out[key] = to_epoch(out[key])
    data = rec.get("data")
    if not out.get("storage_type"):
        if data is not None:
            out["storage_type"] = "in_object"
        elif rec.get("grid_fs_file_id") is not None:
            out["storage_type"] = "gridfs"
        else:
            out["storage_type"] = "unknown"
    if out.get("object_size_bytes") is None and isinstance(data, bytes | bytearray):
        out["object_size_bytes"] = len(data)
    return out


def duration(task: dict[str, Any]) -> float | None:
    start, end = task.get("started_at"), task.get("ended_at")
    if start is None or end is None:
        return None
    return max(0.0, end - start)


def activity(task: dict[str, Any]) -> str:
    name = task.get("activity_id")
    return str(name) if name not in (None, "") else NO_ACTIVITY


@dataclass
class WorkflowRun:
    """One workflow: its (merged) record, empty when only tasks name it, and its tasks."""

    workflow_id: str | None
    record: dict[str, Any]
    tasks: list[dict[str, Any]]
    objects: list[dict[str, Any]] = field(default_factory=list)  # models, datasets, blobs
    # figures computed once and read by both the text and the charts (``resources.of_workflow``)
    computed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str | None:
        return self.record.get("name") or next(
            (t["workflow_name"] for t in self.tasks if t.get("workflow_name")), None
        )

    @property
    def campaign_id(self) -> str | None:
        return self.record.get("campaign_id") or next(
            (t["campaign_id"] for t in self.tasks if t.get("campaign_id")), None
        )

    @property
    def started_at(self) -> float | None:
        start = self.record.get("started_at")
        if start is None:
            starts = [t["started_at"] for t in self.tasks if t.get("started_at") is not None]
            start = min(starts) if starts else None
        return start

    @property
    def ended_at(self) -> float | None:
        end = self.record.get("ended_at")
        if end is None:
            ends = [t["ended_at"] for t in self.tasks if t.get("ended_at") is not None]
            end = max(ends) if ends else None
        return end

    @property
    def duration(self) -> float | None:
        start, end = self.started_at, self.ended_at
        return None if start is None or end is None else max(0.0, end - start)

    @property
    def status(self) -> str:
        return self.record.get("status") or "UNKNOWN"

    @property
    def label(self) -> str:
        return self.name or (self.workflow_id or "(no workflow_id)")


@dataclass
class Dataset:
    """The input grouped by workflow (ordered by start time, then id)."""

    workflows: list[WorkflowRun]
    record_count: int
    other_records: dict[str, int] = field(default_factory=dict)
    unplaced_objects: int = 0  # object records of no workflow in the input

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [o for wf in self.workflows for o in wf.objects]

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return [t for wf in self.workflows for t in wf.tasks]

    @property
    def campaign_ids(self) -> list[str]:
        return sorted({str(wf.campaign_id) for wf in self.workflows if wf.campaign_id})


def _task_order(task: dict[str, Any]) -> tuple:
    """Start time, then id: the same records in any order give the same order."""
    start = task.get("started_at")
    tid = task.get("task_id")
    return (
        start is None,
        start or 0.0,
        tid is None,
        str(tid) if tid is not None else "",
        task["_order"],
    )


def load(records: list[dict[str, Any]]) -> Dataset:
    """Group records by workflow; parts of one task or workflow (same id) are merged.

    Object records (``object_id``: models, datasets) go to the workflow they name, else to
    the workflow of the task they name, else to the only workflow; each record is one version.
    """
    workflows: dict[Any, dict[str, Any]] = {}
    tasks: dict[Any, dict[str, Any]] = {}
    objects: list[dict[str, Any]] = []
    merged: set[Any] = set()
    others: Counter[str] = Counter()
    for index, rec in enumerate(records):
        if not isinstance(rec, dict):
            others["not a dict"] += 1
            continue
        kind = record_kind(rec)
        if kind == "task":
            key = rec.get("task_id")
            key = ("id", str(key)) if key is not None else ("row", index)
            if key in tasks:
                if key not in merged:  # copied once, at its first merge: inputs stay as given
                    tasks[key] = dict(tasks[key])
                    merged.add(key)
                merge_records(tasks[key], rec)
            else:
                tasks[key] = rec
        elif kind == "workflow":
            key = rec.get("workflow_id")
            if key in workflows:
                merge_records(workflows[key], rec)
            else:
                workflows[key] = dict(rec)
        elif kind == "object":
            objects.append(_object(rec))
        else:
            declared = rec.get("type")
            others[declared if isinstance(declared, str) and declared else kind or "unknown"] += 1

    grouped: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for order, task in enumerate(tasks.values()):
        task = _normalized(task)
        task["_order"] = order
        grouped[task.get("workflow_id")].append(task)
    runs = []
    for wf_id in list(workflows) + [k for k in grouped if k not in workflows]:
        wf_tasks = grouped.get(wf_id, [])
        wf_tasks.sort(key=_task_order)
        record = _normalized(workflows[wf_id]) if wf_id in workflows else {}
        runs.append(WorkflowRun(None if wf_id is None else str(wf_id), record, wf_tasks))
    runs.sort(key=lambda r: (r.started_at is None, r.started_at or 0.0, r.workflow_id or ""))
    unplaced = _place_objects(objects, runs)
    return Dataset(runs, len(records), dict(sorted(others.items())), unplaced)


def _place_objects(objects: list[dict[str, Any]], runs: list[WorkflowRun]) -> int:
    """Give each object to its workflow; returns how many have none in the input."""
    by_id = {run.workflow_id: run for run in runs}
    task_run = {str(t["task_id"]): run for run in runs for t in run.tasks if t.get("task_id")}
    unplaced = 0
    for obj in objects:
        wf_id, task_id = obj.get("workflow_id"), obj.get("task_id")
        run = by_id.get(str(wf_id)) if wf_id is not None else None
        if run is None and task_id is not None:
            run = task_run.get(str(task_id))
        if run is None and wf_id is None and len(runs) == 1:
            run = runs[0]
        if run is None:
            unplaced += 1
        else:
            run.objects.append(obj)
    return unplaced
