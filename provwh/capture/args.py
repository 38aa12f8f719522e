"""Turning a call's arguments into ``used`` and its result into ``generated``.

Binding is planned once per decorated function, so a call pays for a ``zip`` rather than for
``inspect.Signature.bind`` (~3 us). Arguments are bound to parameter names with defaults
applied; an ``argparse.Namespace`` is flattened into its attributes; ``self`` / ``cls`` are left
out (they are the receiver, not an input).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

_NS: type | None = None  # argparse.Namespace, resolved when argparse is in use
_RECEIVERS = ("self", "cls")


def _namespace_type() -> type:
    global _NS
    if _NS is None:
        import argparse

        _NS = argparse.Namespace
    return _NS


def _flatten_namespaces(used: dict[str, Any]) -> dict[str, Any]:
    ns = _namespace_type()
    out: dict[str, Any] = {}
    for key, value in used.items():
        if type(value) is ns:
            out.update(vars(value))
        else:
            out[key] = value
    return out


def default_args_handler(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Flowcept's default handler for unbound calls: ``arg_<i>`` for positionals, then kwargs."""
    used = {f"arg_{i}": a for i, a in enumerate(args)}
    used.update(kwargs)
    return _flatten_namespaces(used)


def make_binder(func: Callable) -> Callable[[tuple, dict], dict[str, Any]]:
    """A fast ``(args, kwargs) -> used`` for ``func``."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return lambda args, kwargs: default_args_handler(*args, **kwargs)
    params = list(sig.parameters.values())
    skip = 1 if params and params[0].name in _RECEIVERS else 0
    simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
    if not simple:
        return _slow_binder(sig, skip)

    names = tuple(p.name for p in params)
    visible = names[skip:]
    defaults = tuple((p.name, p.default) for p in params[skip:] if p.default is not p.empty)
    n = len(names)
    ns = _namespace_type()

    def bind(args: tuple, kwargs: dict) -> dict[str, Any]:
        if not kwargs and len(args) == n and not skip:
            used = dict(zip(names, args, strict=True))
            return _flatten_namespaces(used) if ns in map(type, args) else used
        if len(args) > n:
            return _fallback(args, kwargs)
        used = dict(zip(names, args, strict=False))
        if kwargs:
            used.update(kwargs)
        if skip:
            used.pop(names[0], None)
        if len(used) < len(visible):
            for name, default in defaults:
                if name not in used:
                    used[name] = default
        if ns in map(type, args) or (kwargs and ns in map(type, kwargs.values())):
            return _flatten_namespaces(used)
        return used

    # Call paths may inline the commonest case: exactly len(names) positional arguments.
    bind.exact_names = None if skip else names  # type: ignore[attr-defined]
    bind.namespace_type = ns  # type: ignore[attr-defined]
    return bind


def _fallback(args: tuple, kwargs: dict) -> dict[str, Any]:
    # The call does not fit the signature; the function itself will raise. Record what was given.
    return default_args_handler(*args, **kwargs)


def _slow_binder(sig: inspect.Signature, skip: int) -> Callable[[tuple, dict], dict[str, Any]]:
    names = list(sig.parameters)

    def bind(args: tuple, kwargs: dict) -> dict[str, Any]:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError:
            return _fallback(args, kwargs)
        bound.apply_defaults()
        used: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = sig.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                for i, v in enumerate(value):
                    used[f"{name}_{i}"] = v
            elif kind is inspect.Parameter.VAR_KEYWORD:
                used.update(value)
            else:
                used[name] = value
        if skip:
            used.pop(names[0], None)
        return _flatten_namespaces(used)

    return bind


def make_output_mapper(output_names: str | list | tuple | None) -> Callable[[Any], Any]:
    """A ``result -> generated`` function following Flowcept's rules.

    A dict passes through; ``output_names`` names a scalar (a string) or the items of a tuple or
    list result of the same length; anything else is stored as ``{"arg_0": result}``. ``None``
    results produce no ``generated``.
    """
    if isinstance(output_names, str):
        single = output_names

        def one(result: Any) -> Any:
            if result is None:
                return None
            if isinstance(result, dict):
                return result
            return {single: result}

        return one

    names = tuple(output_names) if output_names else ()

    def many(result: Any) -> Any:
        if result is None:
            return None
        if isinstance(result, dict):
            return result
        if names and isinstance(result, (tuple, list)) and len(result) == len(names):
            return dict(zip(names, result, strict=True))
        if len(names) == 1:
            return {names[0]: result}
        return {"arg_0": result}

    return many
