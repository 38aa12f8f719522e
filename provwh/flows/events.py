"""Flow and task lifecycle events, delivered to listeners added per flow or globally.

Emitting costs one truthiness test when nobody listens, so flows without listeners pay
nothing. A listener that raises is logged and skipped: observers never break the run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from time import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provwh.flows.flow import Flow
    from provwh.flows.task import Task

log = logging.getLogger("provwh.flows")


class FlowEventType(StrEnum):
    FLOW_START = "flow_start"
    FLOW_STOP = "flow_stop"
    TASK_START = "task_start"
    TASK_STOP = "task_stop"
    FLOW_MESSAGE = "flow_message"
    NEW_ARTIFACT = "new_artifact"
    NEW_RESULT = "new_result"


@dataclass(slots=True)
class FlowEvent:
    """What happened (``event_type``), in which flow and task, with its details in ``data``."""

    event_type: FlowEventType
    flow: Flow | None
    task: Task | None = None
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time)

    @property
    def flow_id(self) -> str | None:
        return self.flow.flow_id if self.flow is not None else None

    @property
    def flow_name(self) -> str | None:
        return self.flow.flow_name if self.flow is not None else None

    @property
    def task_id(self) -> str | None:
        return self.task.task_id if self.task is not None else None

    @property
    def task_name(self) -> str | None:
        return self.task.task_name if self.task is not None else None


Listener = Callable[[FlowEvent], Any]


class FlowEvents:
    """A set of listeners. Copy-on-write: dispatch never takes a lock or sees a half update."""

    def __init__(self) -> None:
        self._listeners: tuple[tuple[Listener, frozenset | None], ...] = ()
        self._lock = threading.Lock()

    def add_listener(
        self, listener: Listener, event_types: Iterable[FlowEventType | str] | None = None
    ) -> Listener:
        """Call ``listener(event)`` for every event (or only those of ``event_types``)."""
        kinds = None if event_types is None else frozenset(FlowEventType(t) for t in event_types)
        with self._lock:
            self._listeners = (*self._listeners, (listener, kinds))
        return listener

    def remove_listener(self, listener: Listener) -> bool:
        """Remove every registration of ``listener``; True if there was one."""
        with self._lock:
            kept = tuple(entry for entry in self._listeners if entry[0] is not listener)
            removed = len(kept) != len(self._listeners)
            self._listeners = kept
        return removed

    def clear(self) -> None:
        with self._lock:
            self._listeners = ()

    @contextmanager
    def listening(
        self, listener: Listener, event_types: Iterable[FlowEventType | str] | None = None
    ) -> Iterator[Listener]:
        """Add ``listener`` for the ``with`` block only: the leak-proof way to observe runs."""
        self.add_listener(listener, event_types)
        try:
            yield listener
        finally:
            self.remove_listener(listener)

    @property
    def listeners(self) -> list[Listener]:
        return [entry[0] for entry in self._listeners]

    def __len__(self) -> int:
        return len(self._listeners)

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def dispatch(self, event: FlowEvent) -> None:
        for listener, kinds in self._listeners:
            if kinds is None or event.event_type in kinds:
                try:
                    listener(event)
                except Exception as exc:
                    log.warning("provwh.flows: event listener %r failed: %r", listener, exc)


flow_events = FlowEvents()
"""Listeners for the events of every flow in the process."""


def emit(
    flow: Flow | None,
    event_type: FlowEventType,
    task: Task | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Deliver one event to the flow's listeners, then to the global ones."""
    local = flow._events if flow is not None else None
    if not flow_events._listeners and not local:
        return
    event = FlowEvent(event_type, flow, task, data if data is not None else {})
    if local:
        local.dispatch(event)
    flow_events.dispatch(event)
