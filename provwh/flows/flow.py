"""``Flow``: the container of a run (shared data, logs, timings, errors, artifacts, events),
and the ``@flow`` decorator.

A flow is configured with ``setup(target, *args, **kwargs)`` and run with ``execute()``; each
execution is a new run with a new ``flow_id`` (a UUID, also the provenance workflow id). While
the target runs, the flow is the current scope of the context, which is how tasks, prints and
nested flows find it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from time import time
from typing import Any

from provwh.core.ids import current_workflow_id, new_uuid
from provwh.flows import logs, provenance, record
from provwh.flows.aio import run_in_new_loop
from provwh.flows.config import FlowConfig
from provwh.flows.context import scope
from provwh.flows.events import FlowEvents, FlowEventType, Listener, emit, flow_events
from provwh.flows.plan import CallPlan, flow_plan

_scope_get, _scope_set, _scope_reset = scope.get, scope.set, scope.reset


def _enter_workflow(flow: Flow) -> Any:
    """While a recorded run's body runs, capture-layer tasks belong to the run's workflow."""
    if flow._recorder is None:
        return None
    return current_workflow_id.set(flow.flow_id)


def _exit_workflow(token: Any) -> None:
    if token is not None:
        current_workflow_id.reset(token)


class Flow:
    """A workflow run with an injected execution context.

    Decorator style: ``@flow`` on a function; calling it returns a set-up ``Flow``. Class
    style: subclass and override ``main()`` (or define ``run()``), then
    ``MyFlow().setup().execute()``. Parameters named ``this_flow`` and ``flow_data`` are
    injected into the target; explicit arguments win. ``with Flow() as f:`` scopes the flow's
    own event listeners: they are removed when the block ends.
    """

    _is_task = False
    flow_name: str | None = None
    flow_config: FlowConfig

    def __init__(
        self, flow_name: str | None = None, flow_config: FlowConfig | dict | None = None
    ) -> None:
        if flow_name is not None:
            self.flow_name = flow_name
        self.flow_config = FlowConfig.coerce(
            flow_config if flow_config is not None else getattr(type(self), "flow_config", None)
        )
        self.flow_id: str | None = None
        self.flow_target: Callable | None = None
        self.flow_args: tuple = ()
        self.flow_kwargs: dict[str, Any] = {}
        self.flow_run_params: dict[str, Any] | None = None
        self.flow_data: dict[str, Any] = {}
        self.flow_status: str | None = None
        self.flow_error: BaseException | None = None
        self.flow_return_value: Any = None
        self.executed_tasks: list = []
        self.flow_artifacts: list[dict[str, Any]] = []
        self.flow_results: list[dict[str, Any]] = []
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.parent_flow: Flow | None = None
        self._plan: CallPlan | None = None
        self._logs: list[tuple] = []
        self._events: FlowEvents | None = None
        self._recorder: Any = None
        self._session: Any = None
        self._partial: dict | None = None

    # -- set up ------------------------------------------------------------------------------
    def main(self) -> Any:
        """The body of a class-style flow: override it (or define ``run()``)."""
        return None

    def setup(self, target: Callable | None = None, *args: Any, **kwargs: Any) -> Flow:
        """Set what ``execute()`` runs: ``target(*args, **kwargs)``, by default ``main``/``run``."""
        if target is None:
            target = self._default_target()
        elif not callable(target):
            raise TypeError(f"a flow target must be callable, not {type(target).__name__}")
        self.flow_target = target
        self.flow_args = args
        self.flow_kwargs = kwargs
        self._plan = flow_plan(target)
        if self.flow_name is None:
            if type(self) is Flow:
                self.flow_name = getattr(target, "__name__", type(target).__name__)
            else:
                self.flow_name = type(self).__name__
        self.flow_status = "SUBMITTED"
        return self

    def _default_target(self) -> Callable:
        cls = type(self)
        if cls.main is Flow.main and callable(getattr(cls, "run", None)):
            return self.run
        return self.main

    # -- run ---------------------------------------------------------------------------------
    def execute(self) -> Flow:
        """Run the flow (an async target in a fresh event loop); returns the flow."""
        return self.execute_flow()

    def execute_flow(self, flow_run_params: dict[str, Any] | None = None) -> Flow:
        """Run with ``flow_run_params`` overriding the target's arguments of the same name."""
        plan = self._check_setup()
        if plan.is_async:
            run_in_new_loop(self._run_async(flow_run_params))
        else:
            self._run_sync(flow_run_params)
        return self

    async def execute_async(self, flow_run_params: dict[str, Any] | None = None) -> Flow:
        """Run in the current event loop (a sync target runs inline); returns the flow."""
        plan = self._check_setup()
        if plan.is_async:
            await self._run_async(flow_run_params)
        else:
            self._run_sync(flow_run_params)
        return self

    execute__async = execute_async

    def _check_setup(self) -> CallPlan:
        if self._plan is None:
            raise ValueError("Setup has not been called")
        if self.flow_status == "RUNNING":
            raise RuntimeError(f"flow {self.flow_name!r} is already running")
        return self._plan

    def _call_args(self, params: dict[str, Any] | None) -> tuple[tuple, dict]:
        args, kwargs = self.flow_args, dict(self.flow_kwargs)
        self.flow_run_params = dict(params) if params else None
        if params:
            plan = self._plan
            for name, value in params.items():
                if name in plan.positions:
                    pos = plan.positions[name]
                    if pos is not None and pos < len(args):
                        args = (*args[:pos], value, *args[pos + 1 :])
                        continue
                elif not plan.var_keyword:
                    self.log_debug(f"flow_run_params: {name!r} is not a parameter; ignored")
                    continue
                kwargs[name] = value
        n = len(args)
        for name, pos in self._plan.inject:
            if name in kwargs or (pos is not None and pos < n):
                continue
            kwargs[name] = self if name == "this_flow" else self.flow_data
        return args, kwargs

    def _begin(self, params: dict[str, Any] | None) -> tuple[tuple, dict]:
        if self.flow_id is not None:  # a re-run starts from a clean slate
            self.flow_data = {}
            self.executed_tasks = []
            self.flow_artifacts = []
            self.flow_results = []
            self._logs = []
            self.flow_error = self.flow_return_value = self.ended_at = None
        self.parent_flow = _current_flow()
        self.flow_id = new_uuid()
        self.flow_status = "RUNNING"
        args, kwargs = self._call_args(params)
        self.started_at = time()
        logs.acquire()
        try:
            provenance.start_flow(self, args, kwargs)
            if flow_events._listeners or self._events:
                emit(self, FlowEventType.FLOW_START)
        except BaseException:
            self.flow_status = "ERROR"
            logs.release()
            raise
        return args, kwargs

    def _end(self, result: Any, error: BaseException | None) -> None:
        try:
            if self._partial is not None:
                logs.flush_partial(self)
            self.ended_at = time()
            self.flow_return_value = result
            if error is None:
                self.flow_status = "FINISHED"
            else:
                self.flow_status = "ERROR"
                self.flow_error = error
                failed = next(
                    (t for t in reversed(self.executed_tasks) if t.task_error is error), None
                )
                where = f" (in task {failed.task_name})" if failed is not None else ""
                logs.log(self, None, "ERROR", f"{type(error).__name__}: {error}{where}")
            provenance.finish_flow(self)
            if flow_events._listeners or self._events:
                data = {"status": self.flow_status, "duration": self.ended_at - self.started_at}
                emit(self, FlowEventType.FLOW_STOP, None, data)
        finally:
            logs.release()
        if error is not None and (
            self.flow_config.raise_flow_error or not isinstance(error, Exception)
        ):
            raise error

    def _run_sync(self, params: dict[str, Any] | None) -> None:
        args, kwargs = self._begin(params)
        token = _scope_set(self)
        wf_token = _enter_workflow(self)
        error = result = None
        try:
            result = self.flow_target(*args, **kwargs)
        except BaseException as exc:
            error = exc
        finally:
            _exit_workflow(wf_token)
            _scope_reset(token)
        self._end(result, error)

    async def _run_async(self, params: dict[str, Any] | None) -> None:
        args, kwargs = self._begin(params)
        token = _scope_set(self)
        wf_token = _enter_workflow(self)
        error = result = None
        try:
            result = await self.flow_target(*args, **kwargs)
        except BaseException as exc:
            error = exc
        finally:
            _exit_workflow(wf_token)
            _scope_reset(token)
        self._end(result, error)

    # -- observability -----------------------------------------------------------------------
    def _log(self, level: str, message: Any) -> None:
        s = _scope_get()  # inside one of this flow's tasks, the line belongs to that task
        task = s if s is not None and s._is_task and s.task_flow is self else None
        logs.log(self, task, level, message)

    def log_info(self, message: Any) -> None:
        self._log("INFO", message)

    def log_debug(self, message: Any) -> None:
        self._log("DEBUG", message)

    def log_error(self, message: Any) -> None:
        self._log("ERROR", message)

    def captured_logs(self) -> list[dict[str, Any]]:
        return record.captured_logs(self)

    def durations(self) -> dict[str, Any]:
        return record.durations(self)

    def flow_output(self) -> dict[str, Any]:
        return record.flow_output(self)

    def json(self) -> dict[str, Any]:
        return record.flow_json(self)

    @property
    def flow_duration(self) -> float | None:
        return record.flow_duration(self)

    # -- artifacts and results ---------------------------------------------------------------
    def add_flow_artifact(
        self,
        description: str | None = None,
        key: str | None = None,
        data: Any = None,
        artifact_type: str | None = None,
    ) -> dict[str, Any]:
        """Keep a data product of the run (and emit ``new_artifact``)."""
        artifact = {
            "key": key or f"artifact_{len(self.flow_artifacts) + 1}",
            "description": description,
            "artifact_type": artifact_type,
            "data": data,
            **self._origin(),
        }
        self.flow_artifacts.append(artifact)
        provenance.record_artifact(self, artifact)
        if flow_events._listeners or self._events:
            emit(self, FlowEventType.NEW_ARTIFACT, _current_task_of(self), artifact)
        return artifact

    def add_flow_result(
        self, key: str, description: str | None = None, value: Any = None
    ) -> dict[str, Any]:
        """Keep a named result of the run (and emit ``new_result``)."""
        result = {"key": key, "description": description, "value": value, **self._origin()}
        self.flow_results.append(result)
        if flow_events._listeners or self._events:
            emit(self, FlowEventType.NEW_RESULT, _current_task_of(self), result)
        return result

    def _origin(self) -> dict[str, Any]:
        task = _current_task_of(self)
        return {
            "task_id": task.task_id if task is not None else None,
            "task_name": task.task_name if task is not None else None,
            "created_at": time(),
        }

    # -- events ------------------------------------------------------------------------------
    def add_event_listener(
        self, listener: Listener, event_types: Iterable[FlowEventType | str] | None = None
    ) -> Listener:
        """Listen to this flow's events only (every run of it, until removed)."""
        if self._events is None:
            self._events = FlowEvents()
        return self._events.add_listener(listener, event_types)

    def remove_event_listener(self, listener: Listener) -> bool:
        return self._events.remove_listener(listener) if self._events is not None else False

    def remove_event_listeners(self) -> None:
        self._events = None

    # -- context manager ---------------------------------------------------------------------
    def __enter__(self) -> Flow:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.remove_event_listeners()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(flow_name={self.flow_name!r}, flow_id={self.flow_id!r}, "
            f"flow_status={self.flow_status!r})"
        )


def _current_flow() -> Flow | None:
    s = _scope_get()
    if s is None:
        return None
    return s.task_flow if s._is_task else s


def _current_task_of(flow: Flow) -> Any:
    s = _scope_get()
    return s if s is not None and s._is_task and s.task_flow is flow else None


def flow(
    func: Callable | None = None,
    *,
    flow_name: str | None = None,
    flow_config: FlowConfig | dict | None = None,
) -> Callable:
    """Make ``func`` a flow: calling it returns a ``Flow`` set up with the call's arguments.

    ``my_flow(x).execute()`` runs it; ``flow_name`` defaults to the function's name.
    """
    if func is None:
        return lambda f: flow(f, flow_name=flow_name, flow_config=flow_config)
    flow_plan(func)  # plan once, at decoration
    name = flow_name or getattr(func, "__name__", None)
    config = FlowConfig.coerce(flow_config)

    @functools.wraps(func)
    def make(*args: Any, **kwargs: Any) -> Flow:
        return Flow(flow_name=name, flow_config=config).setup(func, *args, **kwargs)

    make.flow_target = func
    return make
