"""Per-run capture of ``print()`` and ``log_*`` calls, safe with any number of threads.

``sys.stdout`` is wrapped (not replaced) by one ``RoutingStream`` while flows run: a write
made where no flow or task is running goes straight to the wrapped stream, and a write made
inside one is recorded for that run and echoed to the wrapped stream when its config says so.
Routing follows the writer's context, so a thread printing outside any flow never loses output
and a flow never sees another run's lines. The wrapper is removed when the last run ends.
"""

from __future__ import annotations

import sys
import threading
from time import time
from typing import TYPE_CHECKING, Any

from provwh.flows.config import LEVELS
from provwh.flows.context import scope
from provwh.flows.events import FlowEventType, emit, flow_events

if TYPE_CHECKING:
    from provwh.flows.flow import Flow
    from provwh.flows.task import Task

_scope_get = scope.get
_get_ident = threading.get_ident
_lock = threading.Lock()
_users = 0

PRINT = "stdout"  # the source of an entry made by print()
LOG = "log"  # the source of an entry made by log_info / log_debug / log_error


class RoutingStream:
    """A ``sys.stdout`` stand-in that sends each write to the run it was made in."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def write(self, text: str) -> int:
        s = _scope_get()
        if s is None:
            return self._target.write(text)
        return route(s, text, self._target)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def acquire() -> None:
    """A run starts: make sure ``sys.stdout`` routes."""
    global _users
    with _lock:
        _users += 1
        if sys.stdout is not None and not isinstance(sys.stdout, RoutingStream):
            sys.stdout = RoutingStream(sys.stdout)


def release() -> None:
    """A run ended: unwrap ``sys.stdout`` once no run is left (if nobody wrapped it since)."""
    global _users
    with _lock:
        _users -= 1
        if _users <= 0:
            _users = 0
            while isinstance(sys.stdout, RoutingStream):
                sys.stdout = sys.stdout._target


def console(error: bool = False) -> Any:
    """The real stream behind our wrapper (writes to it are never captured)."""
    stream = sys.stderr if error else sys.stdout
    while isinstance(stream, RoutingStream):
        stream = stream._target
    return stream


def _echoes(flow: Flow | None, level: str) -> bool:
    if flow is None:
        return True
    config = flow.flow_config
    return config.log_to_console and LEVELS[level] >= LEVELS[config.console_level]


def route(s: Any, text: str, target: Any) -> int:
    """A ``print()`` write made inside scope ``s`` (a flow or a task)."""
    if s._is_task:
        task, flow = s, s.task_flow
    else:
        task, flow = None, s
    if _echoes(flow, "INFO"):
        target.write(text)
    ident = _get_ident()
    partial = s._partial
    if partial:
        text = partial.pop(ident, "") + text
    if "\n" not in text:
        if text:
            _partials(s)[ident] = text
        return len(text)
    *lines, rest = text.split("\n")
    if rest:
        _partials(s)[ident] = rest
    for line in lines:
        add(flow, task, "INFO", line, PRINT)
    return len(text)


def _partials(s: Any) -> dict[int, str]:
    partial = s._partial
    if partial is None:
        with _lock:
            partial = s._partial
            if partial is None:
                partial = s._partial = {}
    return partial


def flush_partial(s: Any) -> None:
    """Record what scope ``s`` printed without a final newline (at its end)."""
    partial, s._partial = s._partial, None
    if partial:
        task, flow = (s, s.task_flow) if s._is_task else (None, s)
        for text in partial.values():
            add(flow, task, "INFO", text, PRINT)


def add(flow: Flow | None, task: Task | None, level: str, msg: str, source: str) -> None:
    """Record one log line for the run (``captured_logs``) and the task (its stdout/stderr)."""
    if task is not None:
        if level == "ERROR":
            lines = task._err
            if lines is None:
                lines = task._err = []
        else:
            lines = task._out
            if lines is None:
                lines = task._out = []
        lines.append(msg)
    if flow is not None and flow.flow_config.log_to_memory:
        flow._logs.append((time(), level, msg, task, source))
    if flow_events._listeners or (flow is not None and flow._events):
        data = {"level": level, "msg": msg, "source": source}
        emit(flow, FlowEventType.FLOW_MESSAGE, task, data)


def log(flow: Flow | None, task: Task | None, level: str, msg: Any) -> None:
    """A ``log_info`` / ``log_debug`` / ``log_error`` call: recorded, echoed per the config."""
    text = msg if isinstance(msg, str) else str(msg)
    add(flow, task, level, text, LOG)
    if _echoes(flow, level):
        stream = console(error=level == "ERROR")
        try:
            stream.write(text + "\n")
        except Exception:  # a closed console must not fail the run
            pass
