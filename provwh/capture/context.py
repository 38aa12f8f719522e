"""Who is capturing right now: the active controller, and what instrumentation may use of it.

The active controller is the innermost one entered in this context (``with Flowcept()``,
``@flowcept``), else the most recently started one in the process, so that tasks run by worker
threads (which start with an empty context) are still captured. The running task and workflow
are ``core.ids``'s context variables.

``Recorder`` is the controller as instrumentation sees it (decorators, loops, custom tasks,
adapters, flows): a few public attributes read on every captured call, so each must cost one
attribute lookup.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from provwh.capture.telemetry import TelemetryCapture
    from provwh.transport.buffer import BatchBuffer


class Recorder(Protocol):
    """The running controller, as the code that records tasks into it uses it."""

    current_workflow_id: str | None
    campaign_id: str | None
    #: between ``start()`` and ``stop()``
    running: bool
    #: instrumentation records tasks now (running, and ``instrumentation`` enabled)
    capturing: bool
    #: snapshots at task start and end as ``telemetry_capture.enabled`` says (None: off)
    telemetry: TelemetryCapture | None
    #: where records go: ``put(record)``, ``put_many(records)``; flushed as batch files
    batch_buffer: BatchBuffer

    @property
    def forced_telemetry(self) -> TelemetryCapture:
        """Telemetry whatever the switch says (``@telemetry_flowcept_task``)."""
        ...

    def update_workflow(self, **fields: Any) -> None:
        """Merge fields into this run's workflow record."""
        ...


_context_controller: ContextVar[Recorder | None] = ContextVar("provwh_controller", default=None)
_started: list[Recorder] = []
_started_lock = threading.Lock()

STARTED = _started  # read-only view for call paths that inline the lookup below


def active_controller() -> Recorder | None:
    ctl = _context_get()
    if ctl is not None and ctl.running:
        return ctl
    return _started[-1] if _started else None


_context_get = _context_controller.get


def push_started(ctl: Recorder) -> None:
    with _started_lock:
        _started.append(ctl)


def remove_started(ctl: Recorder) -> None:
    with _started_lock:
        try:
            _started.remove(ctl)
        except ValueError:
            pass


def running_controllers() -> list[Any]:
    return list(_started)


def enter_controller(ctl: Recorder) -> Any:
    return _context_controller.set(ctl)


def exit_controller(token: Any) -> None:
    try:
        _context_controller.reset(token)
    except ValueError:  # reset from another context (e.g. stop() in another thread)
        _context_controller.set(None)
