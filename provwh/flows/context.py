"""Which flow and task run here, found in O(1) without passing anything.

One ``ContextVar`` holds the innermost running scope: a ``Task`` while a task runs, else the
``Flow``. Each thread starts with an empty context and each asyncio task copies its creator's,
so concurrent flows in threads never see each other while ``gather`` / ``create_task`` inside a
flow stay attached to it. (The reference walks the stack instead: O(depth), and blind to
threads and asyncio tasks.)
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provwh.flows.flow import Flow
    from provwh.flows.task import Task

scope: ContextVar[Any] = ContextVar("provwh_flow_scope", default=None)


def current_flow() -> Flow | None:
    """The flow running in this context (None outside any flow)."""
    s = scope.get()
    if s is None:
        return None
    return s.task_flow if s._is_task else s


def current_task() -> Task | None:
    """The task running in this context (None outside any task)."""
    s = scope.get()
    return s if s is not None and s._is_task else None
