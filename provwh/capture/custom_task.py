"""``FlowceptTask``: a task built by hand, for code that no decorator fits."""

from __future__ import annotations

import logging
from time import time
from typing import Any

from provwh.capture import context
from provwh.core.ids import current_task_id, current_workflow_id, new_task_id
from provwh.core.model import Status, TaskObject
from provwh.core.text import error_text
from provwh.core.vocabulary import plain_value

log = logging.getLogger("provwh")
_current_task = current_task_id


class FlowceptTask:
    """A task whose inputs, outputs and end the caller reports.

    ``end()`` records the outputs, end telemetry and status, and publishes the task; ``send()``
    publishes it as it is (``ended_at = started_at``) if it has not ended. Passing any of
    ``generated``, ``ended_at``, ``stdout``, ``stderr`` or ``status`` to the constructor ends it
    at once. Used as a context manager, the task is the parent of tasks started inside the
    block and ends at the block's end (``ERROR`` with the exception's message if one escapes).
    A task is published once. Without an active controller, or with instrumentation disabled,
    nothing is captured and every method is a cheap no-op. ``capture_telemetry=False`` leaves
    this task without telemetry snapshots when ``telemetry_capture.enabled`` is on.
    """

    __slots__ = ("_rec", "_ctl", "_telemetry", "_ended", "_token")

    def __init__(
        self,
        task_id: str | None = None,
        workflow_id: str | None = None,
        campaign_id: str | None = None,
        activity_id: str | None = None,
        agent_id: str | None = None,
        source_agent_id: str | None = None,
        parent_task_id: str | None = None,
        used: dict | None = None,
        data: Any = None,
        subtype: str | None = None,
        hostname: str | None = None,
        tags: list[str] | None = None,
        adapter_id: str | None = None,
        custom_metadata: dict | None = None,
        generated: dict | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        status: Status | None = None,
        capture_telemetry: bool = True,
    ) -> None:
        ctl = context.active_controller()
        self._ctl = ctl if ctl is not None and ctl.capturing else None
        # capture_telemetry=False: no snapshots for this task whatever the settings say
        self._telemetry = (
            self._ctl.telemetry if self._ctl is not None and capture_telemetry else None
        )
        self._ended = False
        self._token = None
        rec: dict[str, Any] = {
            "type": "task",
            "task_id": task_id or new_task_id(),
            "workflow_id": workflow_id
            or current_workflow_id.get()
            or (ctl.current_workflow_id if ctl else None),
            "campaign_id": campaign_id or (ctl.campaign_id if ctl else None),
        }
        if activity_id is not None:
            rec["activity_id"] = activity_id
        parent = parent_task_id or _current_task.get()
        if parent is not None:
            rec["parent_task_id"] = parent
        if used is not None:
            rec["used"] = used
        if data is not None:
            rec["data"] = data
        if subtype is not None:
            rec["subtype"] = plain_value(subtype)
        if agent_id is not None:
            rec["agent_id"] = str(agent_id)
        if source_agent_id is not None:
            rec["source_agent_id"] = str(source_agent_id)
        if hostname is not None:
            rec["hostname"] = hostname
        if tags is not None:
            rec["tags"] = [tags] if isinstance(tags, str) else list(tags)
        if adapter_id is not None:
            rec["adapter_id"] = adapter_id
        if custom_metadata is not None:
            rec["custom_metadata"] = custom_metadata
        if self._telemetry is not None:
            rec["telemetry_at_start"] = self._telemetry.snapshot()
        rec["started_at"] = started_at or time()
        self._rec = rec
        if (
            generated is not None
            or ended_at is not None
            or stdout is not None
            or stderr is not None
            or status is not None
        ):
            self.end(generated=generated, ended_at=ended_at, stdout=stdout, stderr=stderr,
                     status=status)  # fmt: skip

    def __enter__(self) -> FlowceptTask:
        self._token = _current_task.set(self._rec["task_id"])
        return self

    def __exit__(self, exc_type: Any, exc_val: BaseException | None, exc_tb: Any) -> None:
        if self._token is not None:
            try:
                _current_task.reset(self._token)
            except ValueError:
                pass
            self._token = None
        if not self._ended:
            if exc_val is not None:
                self.end(stderr=error_text(exc_val), status=Status.ERROR)
            else:
                self.end()

    def end(
        self,
        generated: dict | None = None,
        ended_at: float | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        data: Any = None,
        custom_metadata: dict | None = None,
        status: Status | None = None,
    ) -> None:
        """Record the task's outcome and publish it (once)."""
        if self._ended:
            log.warning("provwh: task %s has already ended; end() ignored", self._rec["task_id"])
            return
        rec = self._rec
        if generated is not None:
            rec["generated"] = generated
        if stdout is not None:
            rec["stdout"] = stdout
        if stderr is not None:
            rec["stderr"] = stderr
        if data is not None:
            rec["data"] = data
        if custom_metadata is not None:
            if isinstance(rec.get("custom_metadata"), dict):
                rec["custom_metadata"] = {**rec["custom_metadata"], **custom_metadata}
            else:
                rec["custom_metadata"] = custom_metadata
        if status is None:
            status = Status.FINISHED
        rec["status"] = status.value if isinstance(status, Status) else str(status)
        if self._telemetry is not None:
            rec["telemetry_at_end"] = self._telemetry.snapshot()
        rec["ended_at"] = ended_at or time()
        self._publish()

    def send(self) -> None:
        """Publish the task as it is, unless it has already ended."""
        if self._ended:
            return
        rec = self._rec
        rec.setdefault("ended_at", rec["started_at"])
        self._ended = True  # _publish(), inlined: send() is the commonest way out
        if self._ctl is not None:
            self._ctl.batch_buffer.put(rec)

    @property
    def _task(self) -> TaskObject:
        """The task as Flowcept's ``TaskObject`` (a view: writes go to the record)."""
        return TaskObject._wrap(self._rec)

    def _publish(self) -> None:
        self._ended = True
        if self._ctl is not None:
            self._ctl.batch_buffer.put(self._rec)

    def get_id(self) -> str:
        return self._rec["task_id"]

    def get_workflow_id(self) -> str | None:
        return self._rec.get("workflow_id")

    def get_campaign_id(self) -> str | None:
        return self._rec.get("campaign_id")

    def get_agent_id(self) -> str | None:
        return self._rec.get("agent_id")
