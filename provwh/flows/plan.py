"""What a flow or task target needs at call time, worked out once per function.

Signature inspection costs ~10 us, so it runs when a function is decorated (or first set up as
a flow target) and never on the call path: the plan lists which context parameters to inject
and at which positions an explicit argument would already fill them.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any

from provwh.capture.args import make_binder, make_output_mapper

FLOW_INJECTED = ("this_flow", "flow_data")
TASK_INJECTED = ("this_flow", "this_task", "flow_data", "task_data")


class CallPlan:
    __slots__ = (
        "func",
        "name",
        "is_async",
        "inject",
        "injected",
        "positions",
        "var_keyword",
        "_bind",
        "map_output",
        "raise_on_error",
    )

    def __init__(
        self,
        func: Callable | None,
        target: Callable,
        injectable: tuple[str, ...],
        name: str | None = None,
        raise_on_error: bool = True,
        output_names: Any = None,
    ) -> None:
        self.func = func
        self.name = name or getattr(target, "__name__", type(target).__name__)
        self.is_async = inspect.iscoroutinefunction(target)
        try:
            params = list(inspect.signature(target).parameters.values())
        except (TypeError, ValueError):
            params = []
        positions: dict[str, int | None] = {}
        for i, p in enumerate(params):
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                positions[p.name] = i
            elif p.kind is p.KEYWORD_ONLY:
                positions[p.name] = None
        self.positions = positions
        self.var_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
        kinds = {p.name: p.kind for p in params}
        # (name, position): injected unless passed by keyword or at that position
        self.inject = tuple(
            (n, positions[n])
            for n in injectable
            if n in positions and kinds[n] is not inspect.Parameter.POSITIONAL_ONLY
        )
        self.injected = tuple(n for n in injectable if n in positions)
        self._bind = None
        self.map_output = make_output_mapper(output_names)
        self.raise_on_error = raise_on_error

    def used(self, target: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
        """The call's bound arguments without the injected context parameters."""
        bind = self._bind
        if bind is None:
            bind = self._bind = make_binder(target)
        used = bind(args, kwargs)
        for name in self.injected:
            used.pop(name, None)
        return used


_flow_plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def flow_plan(target: Callable) -> CallPlan:
    """The plan of a flow target; bound methods share their function's (cached) plan."""
    bound = inspect.ismethod(target)
    key = target.__func__ if bound else target
    try:
        cached = _flow_plans.get(key)
    except TypeError:  # not weak-referenceable
        return CallPlan(None, target, FLOW_INJECTED)
    plans = cached or {}
    plan = plans.get(bound)
    if plan is None:
        plan = CallPlan(None, target, FLOW_INJECTED)
        plans[bound] = plan
        if cached is None:
            _flow_plans[key] = plans
    return plan
