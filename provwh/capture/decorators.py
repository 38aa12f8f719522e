"""``@flowcept_task`` and its variants (``@flowcept``, for a workflow's main function, is the
facade's: it builds a ``Flowcept``).

Each decorator plans its work once (argument binder, output mapper, static fields) so a call
costs a few dict operations. ``@flowcept_task`` records the running task in a ``ContextVar``
(tasks started inside it get ``parent_task_id``); ``@lightweight_flowcept_task`` only notes
ids, times, the raw arguments and the result, and builds the record when the buffer flushes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from time import time
from typing import Any

from provwh.capture import context
from provwh.capture.args import make_binder, make_output_mapper
from provwh.capture.deferred import TaskBuilder
from provwh.core.ids import ID_STATE, current_task_id, current_workflow_id, new_task_id
from provwh.core.model import task_record
from provwh.core.text import error_text
from provwh.core.vocabulary import plain_value

_current_task = current_task_id
_current_workflow = current_workflow_id.get
_active = context.active_controller
_new_id = new_task_id


def _as_tags(tags: Any) -> list | None:
    if tags is None:
        return None
    if isinstance(tags, str):
        return [tags]
    return list(tags)


class _Plan:
    """What a decorated function's records share, worked out once at decoration time."""

    __slots__ = (
        "func",
        "activity_id",
        "bind",
        "map_output",
        "extra",
        "pop_workflow_id",
        "pop_campaign_id",
    )

    def __init__(
        self,
        func: Callable,
        output_names: Any = None,
        args_handler: Callable | None = None,
        tags: Any = None,
        custom_metadata: dict | None = None,
        subtype: str | None = None,
        activity_id: str | None = None,
        **unused: Any,
    ) -> None:
        self.func = func
        self.activity_id = activity_id or getattr(func, "__name__", type(func).__name__)
        if args_handler is not None:
            self.bind = lambda args, kwargs: args_handler(*args, **kwargs)
        else:
            self.bind = make_binder(func)
        self.map_output = make_output_mapper(output_names)
        extra: dict[str, Any] = {}
        if _as_tags(tags):
            extra["tags"] = _as_tags(tags)
        if custom_metadata:
            extra["custom_metadata"] = custom_metadata
        if subtype:
            extra["subtype"] = plain_value(subtype)
        self.extra = extra
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            params = {}
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        self.pop_workflow_id = "workflow_id" not in params and not accepts_any
        self.pop_campaign_id = "campaign_id" not in params and not accepts_any

    def ids(self, ctl: Any, kwargs: dict) -> tuple[str, str]:
        """Call-time ``workflow_id`` / ``campaign_id`` win over the controller's."""
        wf = kwargs.pop("workflow_id", None) if self.pop_workflow_id else kwargs.get("workflow_id")
        camp = (
            kwargs.pop("campaign_id", None) if self.pop_campaign_id else kwargs.get("campaign_id")
        )
        return wf or _current_workflow() or ctl.current_workflow_id, camp or ctl.campaign_id

    def fail(self, ctl: Any, rec: dict, tel: Any, exc: BaseException) -> None:
        rec["ended_at"] = time()
        rec["status"] = "ERROR"
        rec["stderr"] = error_text(exc)
        if tel is not None:
            rec["telemetry_at_end"] = tel.snapshot()
        ctl.batch_buffer.put(rec)


def _task_decorator(telemetry: bool) -> Callable:
    def decorator(func: Callable | None = None, **options: Any) -> Callable:
        if func is None:
            return lambda f: decorator(f, **options)
        plan = _Plan(func, **options)
        # Everything the call path touches is a local of the closure: each attribute lookup
        # saved is ~20 ns on a path whose budget is ~2 us.
        bind, map_output, activity_id, extra = (
            plan.bind,
            plan.map_output,
            plan.activity_id,
            plan.extra,
        )
        ids, fail = plan.ids, plan.fail
        cv_get, cv_set, cv_reset = _current_task.get, _current_task.set, _current_task.reset
        active, new_id, wf_get = _active, _new_id, _current_workflow
        tel_attr = "forced_telemetry" if telemetry else "telemetry"

        def begin(ctl: Any, args: tuple, kwargs: dict) -> tuple[dict, Any]:
            if kwargs:
                wf, camp = ids(ctl, kwargs)
            else:
                wf, camp = wf_get() or ctl.current_workflow_id, ctl.campaign_id
            rec = task_record(new_id(), wf, camp, activity_id, bind(args, kwargs))
            parent = cv_get()
            if parent is not None:
                rec["parent_task_id"] = parent
            if extra:
                rec.update(extra)
            tel = getattr(ctl, tel_attr)
            if tel is not None:
                rec["telemetry_at_start"] = tel.snapshot()
            return rec, tel

        def end(ctl: Any, rec: dict, tel: Any, result: Any) -> None:
            rec["ended_at"] = time()
            rec["status"] = "FINISHED"
            generated = map_output(result)
            if generated is not None:
                rec["generated"] = generated
            if tel is not None:
                rec["telemetry_at_end"] = tel.snapshot()
            ctl.batch_buffer.put(rec)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                ctl = active()
                if ctl is None or not ctl.capturing:
                    return await func(*args, **kwargs)
                rec, tel = begin(ctl, args, kwargs)
                token = cv_set(rec["task_id"])
                rec["started_at"] = time()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    fail(ctl, rec, tel, exc)
                    raise
                finally:
                    cv_reset(token)
                end(ctl, rec, tel, result)
                return result

            return async_wrapper

        def with_telemetry(ctl: Any, args: tuple, kwargs: dict) -> Any:
            """A call whose record is a dict from its start (its telemetry snapshots)."""
            rec, tel = begin(ctl, args, kwargs)
            token = cv_set(rec["task_id"])
            rec["started_at"] = time()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                fail(ctl, rec, tel, exc)
                raise
            finally:
                cv_reset(token)
            end(ctl, rec, tel, result)
            return result

        if telemetry:

            @functools.wraps(func)
            def telemetry_wrapper(*args: Any, **kwargs: Any) -> Any:
                ctl = active()
                if ctl is None or not ctl.capturing:
                    return func(*args, **kwargs)
                return with_telemetry(ctl, args, kwargs)

            return telemetry_wrapper

        # Without telemetry a call queues a tuple and its record is written with its batch
        # (capture/deferred.py): its id is drawn now, as tasks started inside it name it as
        # their parent. With telemetry, the record is a dict from the start (snapshots).
        builder = TaskBuilder(activity_id, bind, map_output, not options.get("output_names"), extra)
        ctl_get, started, id_state = context._context_get, context.STARTED, ID_STATE

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # active_controller(), inlined
            ctl = ctl_get()
            if ctl is None or not ctl.running:
                ctl = started[-1] if started else None
            if ctl is None or not ctl.capturing:
                return func(*args, **kwargs)
            if ctl.telemetry is not None:
                return with_telemetry(ctl, args, kwargs)
            if kwargs:
                wf, camp = ids(ctl, kwargs)
            else:
                wf, camp = wf_get() or ctl.current_workflow_id, ctl.campaign_id
            tid = id_state[0] + str(next(id_state[1]))
            parent = cv_get()
            token = cv_set(tid)
            t0 = time()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                t1 = time()
                cv_reset(token)
                ctl.batch_buffer.put(
                    (builder, wf, camp, parent, t0, t1, args, kwargs, None, error_text(exc), tid)
                )
                raise
            t1 = time()
            cv_reset(token)
            # BatchBuffer.put(), inlined: one call less per call
            buf = ctl.batch_buffer
            queue = buf.queue
            queue.append((builder, wf, camp, parent, t0, t1, args, kwargs, result, None, tid))
            if len(queue) >= buf.threshold:
                buf.signal()
            return result

        return wrapper

    return decorator


flowcept_task = _task_decorator(telemetry=False)
flowcept_task.__doc__ = """Capture each call of a function as a provenance task.

Usable bare (``@flowcept_task``) or with options: ``output_names``, ``args_handler``, ``tags``,
``custom_metadata``, ``subtype``. Call-time ``workflow_id=`` / ``campaign_id=`` keyword
arguments set the task's ids (and reach the function only if it declares them). Telemetry
follows ``telemetry_capture.enabled``.
"""

telemetry_flowcept_task = _task_decorator(telemetry=True)
telemetry_flowcept_task.__doc__ = """Like ``flowcept_task`` but always captures telemetry."""


def lightweight_flowcept_task(func: Callable | None = None, **options: Any) -> Callable:
    """Capture calls with the least work on the calling thread.

    Keeps task id, times, bound arguments, result and status; the record is built when the
    buffer flushes. Differences from ``flowcept_task``: no telemetry, and tasks started inside a
    lightweight task do not see it as their parent (it still records its own parent).
    Arguments are read at flush time, so an argument mutated right after the call may be
    recorded in its mutated state.
    """
    if func is None:
        return lambda f: lightweight_flowcept_task(f, **options)
    plan = _Plan(func, **options)
    builder = TaskBuilder(
        plan.activity_id, plan.bind, plan.map_output, not options.get("output_names"), plan.extra
    )
    ids, cv_get, wf_get = plan.ids, _current_task.get, _current_workflow
    ctl_get, started = context._context_get, context.STARTED

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            ctl = _active()
            if ctl is None or not ctl.capturing:
                return await func(*args, **kwargs)
            if kwargs:
                wf, camp = ids(ctl, kwargs)
            else:  # a flow run's workflow (or another set one) wins over the session's
                wf, camp = wf_get() or ctl.current_workflow_id, ctl.campaign_id
            t0 = time()
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                ctl.batch_buffer.put((builder, wf, camp, cv_get(), t0, time(), args, kwargs,
                                      None, error_text(exc), None))  # fmt: skip
                raise
            ctl.batch_buffer.put((builder, wf, camp, cv_get(), t0, time(), args, kwargs, result,
                                  None, None))  # fmt: skip
            return result

        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # active_controller(), inlined
        ctl = ctl_get()
        if ctl is None or not ctl.running:
            ctl = started[-1] if started else None
        if ctl is None or not ctl.capturing:
            return func(*args, **kwargs)
        if kwargs:
            wf, camp = ids(ctl, kwargs)
        else:
            wf, camp = wf_get() or ctl.current_workflow_id, ctl.campaign_id
        t0 = time()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            ctl.batch_buffer.put(
                (builder, wf, camp, cv_get(), t0, time(), args, kwargs, None, error_text(exc), None)
            )
            raise
        # BatchBuffer.put(), inlined: one call less per call
        buf = ctl.batch_buffer
        queue = buf.queue
        queue.append((builder, wf, camp, cv_get(), t0, time(), args, kwargs, result, None, None))
        if len(queue) >= buf.threshold:
            buf.signal()
        return result

    return wrapper
