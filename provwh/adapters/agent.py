"""``@agent_flowcept_task`` (also ``@flowcept_agent_task``): an agent's tool call as a provenance
task, without an LLM framework.

A tool call is recorded like a ``@flowcept_task`` call (``used`` = bound arguments,
``generated`` = result, times, ``parent_task_id``) plus ``agent_id`` and
``subtype="agent_tool"`` (``PROV_AGENT.AGENT_TOOL``; ``subtype=PROV_AGENT.AI_MODEL_INVOCATION``
for an LLM call). The agent is the running ``Flowcept(agent_name=...)``'s unless the call or
the decorator names another. A failing tool is recorded with ``status="ERROR"`` and its message in
``stderr``, and the exception is re-raised: an agent framework (MCP reports tool errors to the
model) decides what a failure means, not the capture.

It composes with MCP servers as ``@mcp.tool()`` above ``@agent_flowcept_task``: the wrapper
keeps the function's name, docstring, annotations and ``__wrapped__`` (so the signature MCP
builds its input schema from is the tool's own), and is ``async`` exactly when the tool is.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from time import time
from typing import Any

from provwh.capture import context
from provwh.capture.args import make_binder, make_output_mapper
from provwh.core.ids import current_task_id, current_workflow_id, new_task_id
from provwh.core.model import task_record
from provwh.core.text import error_text
from provwh.core.vocabulary import PROV_AGENT, plain_value

__all__ = ["agent_flowcept_task", "flowcept_agent_task"]

_active = context.active_controller
_current_task = current_task_id
_current_workflow = current_workflow_id.get
_new_id = new_task_id
AGENT_TOOL = PROV_AGENT.AGENT_TOOL.value


def _is_framework_context(value: Any) -> bool:
    """MCP injects a request ``Context`` argument; it is plumbing, not an input of the tool."""
    cls = type(value)
    return cls.__name__ == "Context" and cls.__module__.startswith("mcp.")


def _plain(value: Any) -> Any:
    """Pydantic models (MCP tool arguments and results often are) as dicts."""
    dump = getattr(value, "model_dump", None)
    if dump is not None and not isinstance(value, type):
        try:
            return dump(mode="json")
        except Exception:
            return value
    return value


class _ToolPlan:
    """What every call of one tool shares, worked out once at decoration time."""

    def __init__(
        self,
        func: Callable,
        agent_id: str | None,
        activity_id: str | None,
        output_names: Any,
        tags: Any,
        custom_metadata: dict | None,
        subtype: str,
    ) -> None:
        self.activity_id = activity_id or getattr(func, "__name__", type(func).__name__)
        self.agent_id = None if agent_id is None else str(agent_id)
        self.bind = make_binder(func)
        self.map_output = make_output_mapper(output_names)
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            params = {}
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        # Call-time ids reach the tool only if it declares them (as for @flowcept_task).
        self.pop = {
            name: name not in params and not takes_any
            for name in ("agent_id", "workflow_id", "campaign_id")
        }
        self.undeclared = tuple(name for name, pop in self.pop.items() if pop)
        extra: dict[str, Any] = {"subtype": plain_value(subtype)}
        if tags:
            extra["tags"] = [tags] if isinstance(tags, str) else list(tags)
        if custom_metadata:
            extra["custom_metadata"] = dict(custom_metadata)
        self.extra = extra

    def strip(self, kwargs: dict) -> None:
        """Without a capture, call-time ids the tool does not declare are dropped all the same."""
        for name in self.undeclared:
            kwargs.pop(name, None)

    def _call_value(self, kwargs: dict, name: str) -> Any:
        return kwargs.pop(name, None) if self.pop[name] else kwargs.get(name)

    def begin(self, ctl: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
        """The open record of a call; removes call-time ids the tool does not declare."""
        agent = self._call_value(kwargs, "agent_id") if kwargs else None
        wf = self._call_value(kwargs, "workflow_id") if kwargs else None
        camp = self._call_value(kwargs, "campaign_id") if kwargs else None
        used = {
            k: _plain(v) for k, v in self.bind(args, kwargs).items() if not _is_framework_context(v)
        }
        wf = wf or _current_workflow() or ctl.current_workflow_id
        rec = task_record(_new_id(), wf, camp or ctl.campaign_id, self.activity_id, used)
        agent = agent or self.agent_id or ctl.agent_id
        if agent is not None:
            rec["agent_id"] = str(agent)
        parent = _current_task.get()
        if parent is not None:
            rec["parent_task_id"] = parent
        rec.update(self.extra)
        tel = ctl.telemetry
        if tel is not None:
            rec["telemetry_at_start"] = tel.snapshot()
        rec["started_at"] = time()
        return rec

    def end(self, ctl: Any, rec: dict, result: Any, exc: BaseException | None) -> None:
        rec["ended_at"] = time()
        if exc is None:
            rec["status"] = "FINISHED"
            generated = self.map_output(_plain(result))
            if generated is not None:
                rec["generated"] = generated
        else:
            rec["status"] = "ERROR"
            rec["stderr"] = error_text(exc)
        tel = ctl.telemetry
        if tel is not None:
            rec["telemetry_at_end"] = tel.snapshot()
        ctl.batch_buffer.put(rec)


def agent_flowcept_task(
    func: Callable | None = None,
    *,
    agent_id: str | None = None,
    activity_id: str | None = None,
    output_names: Any = None,
    tags: Any = None,
    custom_metadata: dict | None = None,
    subtype: str = AGENT_TOOL,
) -> Callable:
    """Record each call of an agent tool (sync or async) as a task.

    ``agent_id``: a call-time ``agent_id=`` keyword wins, then this option, then the running
    ``Flowcept(agent_id=...)``. ``activity_id`` defaults to the tool's name. Errors are recorded
    and re-raised. Without a running capture the tool runs untouched.
    """
    if func is None:
        return lambda f: agent_flowcept_task(
            f,
            agent_id=agent_id,
            activity_id=activity_id,
            output_names=output_names,
            tags=tags,
            custom_metadata=custom_metadata,
            subtype=subtype,
        )
    plan = _ToolPlan(func, agent_id, activity_id, output_names, tags, custom_metadata, subtype)
    begin, end, strip = plan.begin, plan.end, plan.strip

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_tool(*args: Any, **kwargs: Any) -> Any:
            ctl = _active()
            if ctl is None or not ctl.capturing:
                if kwargs:
                    strip(kwargs)
                return await func(*args, **kwargs)
            rec = begin(ctl, args, kwargs)
            token = _current_task.set(rec["task_id"])
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                end(ctl, rec, None, exc)
                raise
            finally:
                _current_task.reset(token)
            end(ctl, rec, result, None)
            return result

        return async_tool

    @functools.wraps(func)
    def tool(*args: Any, **kwargs: Any) -> Any:
        ctl = _active()
        if ctl is None or not ctl.capturing:
            if kwargs:
                strip(kwargs)
            return func(*args, **kwargs)
        rec = begin(ctl, args, kwargs)
        token = _current_task.set(rec["task_id"])
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            end(ctl, rec, None, exc)
            raise
        finally:
            _current_task.reset(token)
        end(ctl, rec, result, None)
        return result

    return tool


# Flowcept names the decorator both ways (the function, and the module it lives in:
# ``flowcept.instrumentation.flowcept_agent_task``).
flowcept_agent_task = agent_flowcept_task
