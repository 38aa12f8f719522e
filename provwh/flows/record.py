"""A flow run as data: captured logs, durations, outputs and a JSON-safe dump of everything.

The run keeps compact tuples and task objects while it executes; the dicts a front end or an
audit wants are built only when asked for.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from provwh.core.serialize import dumps
from provwh.flows.provenance import error_info

if TYPE_CHECKING:
    from provwh.flows.flow import Flow
    from provwh.flows.task import Task


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data, by the batch files' rules (bytes as ``$binary``)."""
    return orjson.loads(dumps(value))


def captured_logs(flow: Flow) -> list[dict[str, Any]]:
    """The run's log entries in order: ``time``, ``level``, ``msg``, the task, the source."""
    out = []
    for ts, level, msg, task, source in list(flow._logs):
        out.append(
            {
                "time": datetime.fromtimestamp(ts).strftime("%H:%M:%S"),
                "timestamp": ts,
                "level": level,
                "msg": msg,
                "task": task.task_name if task is not None else None,
                "task_id": task.task_id if task is not None else None,
                "flow_id": flow.flow_id,
                "source": source,
            }
        )
    return out


def flow_duration(flow: Flow) -> float | None:
    if flow.started_at is None or flow.ended_at is None:
        return None
    return flow.ended_at - flow.started_at


def durations(flow: Flow) -> dict[str, Any]:
    """The flow's duration and each task's total (seconds); every call's own in ``task_calls``."""
    totals: dict[str, float] = {}
    calls: dict[str, list[float]] = {}
    for task in list(flow.executed_tasks):
        d = task.duration
        if d is None:
            continue
        name = task.task_name
        totals[name] = totals.get(name, 0.0) + d
        calls.setdefault(name, []).append(d)
    return {
        "flow_name": flow.flow_name,
        "flow_id": flow.flow_id,
        "flow_status": flow.flow_status,
        "flow_duration": flow_duration(flow),
        "flow_tasks": totals,
        "tasks": dict(totals),
        "task_calls": calls,
    }


def task_json(task: Task) -> dict[str, Any]:
    parent = task.task_parent
    return {
        "task_id": task.task_id,
        "task_name": task.task_name,
        "parent_task_id": parent.task_id if parent is not None else None,
        "status": task.status,
        "started_at": task.started_at,
        "ended_at": task.ended_at,
        "duration": task.duration,
        "return_value": to_jsonable(task.task_return_value),
        "error": error_info(task.task_error) if task.task_error is not None else None,
    }


def flow_output(flow: Flow) -> dict[str, Any]:
    """What the run produced (values as they are, not converted)."""
    return {
        "flow_id": flow.flow_id,
        "flow_name": flow.flow_name,
        "flow_status": flow.flow_status,
        "flow_return_value": flow.flow_return_value,
        "flow_error": flow.flow_error,
        "flow_results": list(flow.flow_results),
        "flow_artifacts": list(flow.flow_artifacts),
        "captured_logs": captured_logs(flow),
        "durations": durations(flow),
    }


def flow_json(flow: Flow) -> dict[str, Any]:
    """Everything about the run as JSON-safe data (odd values follow the batch-file rules)."""
    parent = flow.parent_flow
    used = None
    if flow._plan is not None and flow.flow_target is not None:
        used = flow._plan.used(flow.flow_target, flow.flow_args, dict(flow.flow_kwargs))
    return {
        "flow_id": flow.flow_id,
        "flow_name": flow.flow_name,
        "flow_status": flow.flow_status,
        "parent_flow_id": parent.flow_id if parent is not None else None,
        "started_at": flow.started_at,
        "ended_at": flow.ended_at,
        "flow_duration": flow_duration(flow),
        "flow_config": flow.flow_config.to_dict(),
        "flow_args": to_jsonable(used),
        "flow_run_params": to_jsonable(flow.flow_run_params),
        "flow_data": to_jsonable(flow.flow_data),
        "flow_return_value": to_jsonable(flow.flow_return_value),
        "flow_error": error_info(flow.flow_error) if flow.flow_error is not None else None,
        "executed_tasks": [task_json(t) for t in list(flow.executed_tasks)],
        "captured_logs": captured_logs(flow),
        "artifacts": to_jsonable(list(flow.flow_artifacts)),
        "results": to_jsonable(list(flow.flow_results)),
        "durations": durations(flow),
    }
