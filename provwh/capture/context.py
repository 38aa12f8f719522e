"""Who is capturing right now: the active controller and the running task.

The running task lives in a ``ContextVar`` so nesting is right across threads and asyncio
tasks. The active controller is the innermost one entered in this context (``with Flowcept()``,
``@flowcept``), else the most recently started one in the process, so that tasks run by worker
threads (which start with an empty context) are still captured.
"""

from __future__ import annotations

import itertools
import os
import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provwh.capture.controller import Flowcept

current_task_id: ContextVar[str | None] = ContextVar("provwh_task", default=None)
# Set by code that runs a workflow of its own inside a session (a flow run): tasks started in
# its context belong to it rather than to the session's workflow.
current_workflow_id: ContextVar[str | None] = ContextVar("provwh_workflow", default=None)
_context_controller: ContextVar[Flowcept | None] = ContextVar("provwh_controller", default=None)
_started: list[Flowcept] = []
_started_lock = threading.Lock()

# Task ids: a random per-process prefix plus a counter. A uuid4 costs ~2.6 us, this ~0.13 us,
# and ids stay unique across processes, hosts and forks.
# [prefix, counter], mutated in place so call paths may hold a reference to it.
ID_STATE: list[Any] = ["", None]


def _reset_ids() -> None:
    ID_STATE[0] = os.urandom(8).hex() + "-"
    ID_STATE[1] = itertools.count(1)


_reset_ids()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_ids)


def new_task_id() -> str:
    return ID_STATE[0] + str(next(ID_STATE[1]))


def new_uuid() -> str:
    import uuid  # lazy: uuid imports platform (~3 ms)

    return str(uuid.uuid4())


STARTED = _started  # read-only view for call paths that inline the lookup below


def active_controller() -> Flowcept | None:
    ctl = _context_get()
    if ctl is not None and ctl._running:
        return ctl
    return _started[-1] if _started else None


_context_get = _context_controller.get


def push_started(ctl: Flowcept) -> None:
    with _started_lock:
        _started.append(ctl)


def remove_started(ctl: Flowcept) -> None:
    with _started_lock:
        try:
            _started.remove(ctl)
        except ValueError:
            pass


def running_controllers() -> list[Flowcept]:
    return list(_started)


def enter_controller(ctl: Flowcept) -> Any:
    return _context_controller.set(ctl)


def exit_controller(token: Any) -> None:
    try:
        _context_controller.reset(token)
    except ValueError:  # reset from another context (e.g. stop() in another thread)
        _context_controller.set(None)
