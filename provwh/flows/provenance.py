"""The bridge to provenance capture: a flow run is a workflow, each task call a task.

A run inside a capturing ``Flowcept`` session writes to that session's buffer; a standalone
run opens a session of its own when its config (``capture=True``) or the settings
(``flows.capture``, when the settings schema has it) ask; otherwise nothing is recorded and
nothing is paid. The recorder is chosen once per run, so a task call costs one dict and one
buffer append.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from provwh.capture import context as capture_context
from provwh.core import model
from provwh.core.config import get_settings
from provwh.core.text import error_text
from provwh.facade import Flowcept

if TYPE_CHECKING:
    from provwh.flows.flow import Flow
    from provwh.flows.task import Task

log = logging.getLogger("provwh.flows")

_active = capture_context.active_controller


def orphan_recorder() -> Any:
    """The capturing session a task outside any flow records into (or None)."""
    ctl = _active()
    return ctl if ctl is not None and ctl.capturing else None


def _settings_ask() -> bool:
    try:
        return bool(get_settings().get("flows.capture"))
    except KeyError:  # the key is not in this version's settings schema
        return False


def start_flow(flow: Flow, args: tuple, kwargs: dict) -> None:
    """Choose the run's recorder and write the workflow's start record."""
    flow._recorder = flow._session = None
    parent = flow.parent_flow
    ctl = _active()
    if ctl is not None and ctl.capturing:
        flow._recorder = ctl
        used = flow._plan.used(flow.flow_target, args, kwargs)
        rec = {
            "type": "workflow",
            "workflow_id": flow.flow_id,
            "name": flow.flow_name,
            "subtype": "flow",
            "parent_workflow_id": parent.flow_id if parent is not None else ctl.current_workflow_id,
            "campaign_id": ctl.campaign_id,
            "started_at": flow.started_at,
            "status": "RUNNING",
        }
        if used:
            rec["used"] = used
        ctl.batch_buffer.put(rec)
        return
    if not (flow.flow_config.capture or _settings_ask()):
        return
    used = flow._plan.used(flow.flow_target, args, kwargs)
    try:
        ctl = Flowcept(
            workflow_id=flow.flow_id,
            workflow_name=flow.flow_name,
            workflow_subtype="flow",
            workflow_args=used or None,
            parent_workflow_id=parent.flow_id if parent is not None else None,
        )
        ctl.start()
    except Exception as exc:  # provenance must never stop the flow itself
        log.error("provwh.flows: could not start capture for flow %r: %r", flow.flow_name, exc)
        return
    flow._session = (ctl, capture_context.enter_controller(ctl))
    if ctl.capturing:
        flow._recorder = ctl


def finish_flow(flow: Flow) -> None:
    """Write the workflow's end record; close the run's own session if it opened one."""
    ctl, session = flow._recorder, flow._session
    flow._recorder = flow._session = None
    if ctl is not None and (ctl.capturing or session is not None):
        try:
            fields = _end_fields(flow)
            if session is not None:  # our own session: its workflow record is this run's
                ctl.update_workflow(**fields)
            else:
                ctl.batch_buffer.put({"type": "workflow", "workflow_id": flow.flow_id, **fields})
        except Exception as exc:
            log.error("provwh.flows: could not record flow %r: %r", flow.flow_name, exc)
    if session is not None:
        own, token = session
        capture_context.exit_controller(token)
        try:
            own.stop(status=flow.flow_status)
        except Exception as exc:
            log.error("provwh.flows: could not stop capture for flow %r: %r", flow.flow_name, exc)


def record_artifact(flow: Flow, artifact: dict[str, Any]) -> None:
    """A recorded run's artifact becomes a data object (the warehouse's ``data_objects``).

    Its id is ``<run id>:<key>``; the loader computes the size and SHA-256 of bytes data.
    """
    ctl = flow._recorder
    if ctl is None:
        return
    record = {
        "type": "object",
        "object_id": f"{flow.flow_id}:{artifact['key']}",
        "version": 0,
        "object_type": artifact.get("artifact_type") or "artifact",
        "workflow_id": flow.flow_id,
        "task_id": artifact.get("task_id"),
        "created_at": artifact.get("created_at"),
        "custom_metadata": {
            "key": artifact["key"],
            "description": artifact.get("description"),
            "task_name": artifact.get("task_name"),
        },
        "data": artifact.get("data"),
    }
    try:
        ctl.batch_buffer.put({k: v for k, v in record.items() if v is not None})
    except Exception as exc:
        log.error("provwh.flows: could not record artifact %r: %r", artifact["key"], exc)


def _end_fields(flow: Flow) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "started_at": flow.started_at,
        "ended_at": flow.ended_at,
        "status": flow.flow_status,
    }
    generated = flow._plan.map_output(flow.flow_return_value)
    if generated is not None:
        fields["generated"] = generated
    meta: dict[str, Any] = {}
    if flow.flow_error is not None:
        meta["error"] = error_info(flow.flow_error)
    if flow.flow_artifacts:
        meta["artifacts"] = [
            {k: v for k, v in a.items() if k != "data"} for a in flow.flow_artifacts
        ]
    if flow.flow_results:
        meta["results"] = list(flow.flow_results)
    if meta:
        fields["custom_metadata"] = meta
    return fields


def error_info(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": error_text(exc)}


def task_record(
    ctl: Any,
    task: Task,
    parent_id: str | None,
    args: tuple,
    kwargs: dict,
    error: BaseException | None,
) -> dict[str, Any]:
    """The task's provenance record, built once at its end."""
    plan = task._plan
    flow = task.task_flow
    wf = flow.flow_id if flow is not None else ctl.current_workflow_id
    rec = model.task_record(task.task_id, wf, ctl.campaign_id, plan.name,
                      plan.used(plan.func, args, kwargs))  # fmt: skip
    rec.update(started_at=task.started_at, ended_at=task.ended_at, status=task.status)
    if parent_id is not None:
        rec["parent_task_id"] = parent_id
    if flow is None:
        rec["subtype"] = "orphan_task"
    if error is None:
        generated = plan.map_output(task.task_return_value)
        if generated is not None:
            rec["generated"] = generated
    if task._out:
        rec["stdout"] = "\n".join(task._out)
    if task._err:  # error logs, then the exception that failed the task
        rec["stderr"] = "\n".join(task._err)
    return rec
