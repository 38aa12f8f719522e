"""``Task``: one call of a unit of work inside a flow, and the ``@task`` decorator.

A call finds its flow through the context variable (``provwh.flows.context``), injects the
context parameters it declares, times itself, routes what it prints to its run, emits start
and stop events and, when the run is recorded, puts one provenance task record. What is kept
afterwards in ``flow.executed_tasks`` is this compact object (ids, times, status, result,
error): arguments, ``task_data`` and captured lines are dropped at the end of the call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from time import time
from typing import TYPE_CHECKING, Any

from provwh.core.ids import current_task_id, new_task_id
from provwh.flows import logs, provenance, record
from provwh.flows.context import scope
from provwh.flows.events import FlowEventType, emit, flow_events
from provwh.flows.plan import TASK_INJECTED, CallPlan

if TYPE_CHECKING:
    from provwh.flows.flow import Flow

_scope_get, _scope_set, _scope_reset = scope.get, scope.set, scope.reset
_cv = current_task_id
_cv_get, _cv_set, _cv_reset = _cv.get, _cv.set, _cv.reset
_orphan_recorder = provenance.orphan_recorder
_listeners = flow_events  # truthy when global listeners exist
_TASK_START, _TASK_STOP = FlowEventType.TASK_START, FlowEventType.TASK_STOP


class Task:
    """One task call: ``task_id``, ``task_name``, ``task_flow``, ``task_parent``, ``status``,
    ``started_at`` / ``ended_at``, ``task_return_value``, ``task_error``.

    Usually made by ``@task``; ``Task(task_target=f, task_args=..., task_kwargs=...)`` followed
    by ``execute__sync()`` or ``await execute__async()`` runs a function as a task directly.
    """

    __slots__ = (
        "task_id",
        "task_flow",
        "task_parent",
        "task_args",
        "task_kwargs",
        "task_data",
        "task_return_value",
        "task_error",
        "status",
        "started_at",
        "ended_at",
        "_plan",
        "_out",
        "_err",
        "_partial",
    )
    _is_task = True

    def __init__(
        self,
        task_target: Callable,
        task_args: tuple = (),
        task_kwargs: dict[str, Any] | None = None,
        task_name: str | None = None,
        raise_on_error: bool = True,
        output_names: Any = None,
    ) -> None:
        if not callable(task_target):
            raise TypeError("task_target must be callable")
        plan = CallPlan(
            task_target, task_target, TASK_INJECTED, task_name, raise_on_error, output_names
        )
        _init(self, plan, tuple(task_args), dict(task_kwargs or {}))

    # -- what a task exposes -----------------------------------------------------------------
    @property
    def task_name(self) -> str:
        return self._plan.name

    @property
    def task_target(self) -> Callable:
        return self._plan.func

    @property
    def raise_on_error(self) -> bool:
        return self._plan.raise_on_error

    @property
    def duration(self) -> float | None:
        """Seconds the call took (None while it runs)."""
        if self.ended_at is None or self.started_at is None:
            return None
        return self.ended_at - self.started_at

    def find_flow(self) -> Flow | None:
        """The flow this task runs in (None for a task called outside any flow)."""
        return self.task_flow

    def log_info(self, message: Any) -> None:
        logs.log(self.task_flow, self, "INFO", message)

    def log_debug(self, message: Any) -> None:
        logs.log(self.task_flow, self, "DEBUG", message)

    def log_error(self, message: Any) -> None:
        logs.log(self.task_flow, self, "ERROR", message)

    def json(self) -> dict[str, Any]:
        return record.task_json(self)

    def __repr__(self) -> str:
        return f"Task({self.task_name!r}, task_id={self.task_id!r}, status={self.status!r})"

    # -- running -----------------------------------------------------------------------------
    def execute__sync(self) -> Any:
        """Run the task in the flow of the calling context; returns its result."""
        if self._plan.is_async:
            raise TypeError(f"task {self.task_name!r} is async: await execute__async()")
        self._check_fresh()
        _attach(self, _scope_get())
        return self._run_sync()

    async def execute__async(self) -> Any:
        """Await the (async) task in the flow of the calling context; returns its result."""
        self._check_fresh()
        _attach(self, _scope_get())
        if self._plan.is_async:
            return await self._run_async()
        return self._run_sync()

    def _check_fresh(self) -> None:
        if self.status is not None:  # its arguments are gone: a Task object is one call
            raise RuntimeError(f"task {self.task_name!r} has already run; make a new Task")

    def _inject(self, args: tuple, kwargs: dict) -> dict:
        flow = self.task_flow
        n = len(args)
        for name, pos in self._plan.inject:
            if name in kwargs or (pos is not None and pos < n):
                continue  # an explicit argument wins
            if name == "this_task":
                kwargs[name] = self
            elif name == "task_data":
                kwargs[name] = self.task_data = {}
            elif name == "this_flow":
                kwargs[name] = flow
            else:
                kwargs[name] = flow.flow_data if flow is not None else None
        return kwargs

    def _begin(self) -> tuple[Any, Any, Any, Any]:
        flow = self.task_flow
        if flow is not None:
            ctl = flow._recorder
            flow.executed_tasks.append(self)
            if _listeners or flow._events:
                emit(flow, _TASK_START, self)
        else:
            ctl = _orphan_recorder()
            if _listeners:
                emit(None, _TASK_START, self)
        token = _scope_set(self)
        if ctl is not None:
            parent_id = _cv_get()
            cv_token = _cv_set(self.task_id)
        else:
            parent_id = cv_token = None
        self.status = "RUNNING"
        self.started_at = time()
        return ctl, token, parent_id, cv_token

    def _end(self, ctl: Any, parent_id: Any, args: tuple, kwargs: dict, error: Any) -> None:
        if error is None:
            self.status = "FINISHED"
        else:
            self.status = "ERROR"
            self.task_error = error
        if self._partial:
            logs.flush_partial(self)
        if error is not None:  # into stderr; reported to the run only if swallowed here
            text = f"{type(error).__name__}: {error}"
            swallowed = not self._plan.raise_on_error and isinstance(error, Exception)
            if swallowed and self.task_flow is not None:
                logs.log(self.task_flow, self, "ERROR", text)
            elif self._err is None:
                self._err = [text]
            else:
                self._err.append(text)
        if ctl is not None and ctl.capturing:
            try:
                ctl.batch_buffer.put(
                    provenance.task_record(ctl, self, parent_id, args, kwargs, error)
                )
            except Exception as exc:
                provenance.log.error(
                    "provwh.flows: could not record task %r: %r", self.task_name, exc
                )
        flow = self.task_flow
        if _listeners or (flow is not None and flow._events):
            emit(flow, _TASK_STOP, self, {"status": self.status, "duration": self.duration})
        self.task_args = self.task_kwargs = self.task_data = None
        self._out = self._err = self._partial = None

    def _run_sync(self) -> Any:
        args, kwargs = self.task_args, self.task_kwargs
        if self._plan.inject:
            kwargs = self._inject(args, kwargs)
        ctl, token, parent_id, cv_token = self._begin()
        error = None
        try:
            result = self._plan.func(*args, **kwargs)
        except BaseException as exc:
            error, result = exc, None
        finally:
            self.ended_at = time()
            if cv_token is not None:
                _cv_reset(cv_token)
            _scope_reset(token)
        return self._finish(ctl, parent_id, args, kwargs, result, error)

    def _finish(
        self, ctl: Any, parent_id: Any, args: tuple, kwargs: dict, result: Any, error: Any
    ) -> Any:
        """What a call does once its body returned or raised (sync and async alike)."""
        self.task_return_value = result
        self._end(ctl, parent_id, args, kwargs, error)
        if error is not None and (self._plan.raise_on_error or not isinstance(error, Exception)):
            raise error
        return result

    async def _run_async(self) -> Any:
        args, kwargs = self.task_args, self.task_kwargs
        if self._plan.inject:
            kwargs = self._inject(args, kwargs)
        ctl, token, parent_id, cv_token = self._begin()
        error = None
        try:
            result = await self._plan.func(*args, **kwargs)
        except BaseException as exc:
            error, result = exc, None
        finally:
            self.ended_at = time()
            if cv_token is not None:
                _cv_reset(cv_token)
            _scope_reset(token)
        return self._finish(ctl, parent_id, args, kwargs, result, error)


def _init(t: Task, plan: CallPlan, args: tuple, kwargs: dict) -> None:
    t._plan = plan
    t.task_id = new_task_id()
    t.task_args = args
    t.task_kwargs = kwargs
    t.task_flow = t.task_parent = t.task_data = None
    t.task_return_value = t.task_error = None
    t.status = None
    t.started_at = t.ended_at = None
    t._out = t._err = t._partial = None


def _attach(t: Task, s: Any) -> None:
    """Place the call under the running scope: a task (its parent) or a flow."""
    if s is None:
        return
    if s._is_task:
        t.task_parent = s
        t.task_flow = s.task_flow
    else:
        t.task_flow = s


_new = Task.__new__


def task(
    func: Callable | None = None,
    *,
    task_name: str | None = None,
    raise_on_error: bool = True,
    output_names: Any = None,
) -> Callable:
    """Make each call of ``func`` a ``Task`` of the flow it is called in.

    Usable bare or with options; works on functions, methods and ``async def`` functions.
    ``raise_on_error=False`` records a failure and returns None so the flow goes on.
    ``output_names`` names the result in the provenance record (as for ``flowcept_task``).
    """
    if func is None:
        return lambda f: task(
            f, task_name=task_name, raise_on_error=raise_on_error, output_names=output_names
        )
    plan = CallPlan(func, func, TASK_INJECTED, task_name, raise_on_error, output_names)

    if plan.is_async:

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            t = _new(Task)
            _init(t, plan, args, kwargs)
            _attach(t, _scope_get())
            return await t._run_async()

        async_wrapper.task_plan = plan
        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = _new(Task)
        _init(t, plan, args, kwargs)
        s = _scope_get()
        if s is not None:
            if s._is_task:
                t.task_parent = s
                t.task_flow = s.task_flow
            else:
                t.task_flow = s
        return t._run_sync()

    wrapper.task_plan = plan
    return wrapper
