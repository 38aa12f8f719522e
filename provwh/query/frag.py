"""SQL fragments that carry their bound parameters, so values can never become SQL text.

``sql("{} = {}", Raw('"status"'), "FINISHED")`` is ``"status" = ?`` with ``["FINISHED"]``:
each ``{}`` slot takes a fragment (its SQL and parameters, in order), a ``Raw`` piece of SQL
written by provwh (a quoted identifier, a keyword), or a value, which becomes a ``?``
placeholder and a parameter. Parameters therefore always line up with their placeholders,
however fragments are nested or repeated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from provwh.warehouse.escape import escape_str, stored_id


class Raw:
    """SQL text provwh wrote itself (never a user's key or value)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class Frag:
    __slots__ = ("params", "sql")

    def __init__(self, sql: str = "", params: Iterable[Any] = ()) -> None:
        self.sql = sql
        self.params = list(params)

    def __repr__(self) -> str:
        return f"Frag({self.sql!r}, {self.params!r})"


TRUE = Frag("TRUE")
FALSE = Frag("FALSE")


def sql(template: str, *args: Any) -> Frag:
    """Fill the ``{}`` slots of ``template`` with fragments, ``Raw`` SQL or bound values."""
    pieces = template.split("{}")
    if len(pieces) != len(args) + 1:
        raise AssertionError(f"template has {len(pieces) - 1} slots, got {len(args)} args")
    out = [pieces[0]]
    params: list[Any] = []
    for arg, piece in zip(args, pieces[1:], strict=True):
        if isinstance(arg, Frag):
            out.append(arg.sql)
            params.extend(arg.params)
        elif isinstance(arg, Raw):
            out.append(arg.text)
        else:
            out.append("?")
            params.append(arg)
        out.append(piece)
    return Frag("".join(out), params)


def join(sep: str, frags: Iterable[Frag]) -> Frag:
    frags = list(frags)
    return Frag(sep.join(f.sql for f in frags), [p for f in frags for p in f.params])


def all_of(frags: Iterable[Frag]) -> Frag:
    frags = [f for f in frags if f is not TRUE]
    if not frags:
        return TRUE
    if any(f is FALSE for f in frags):
        return FALSE
    return frags[0] if len(frags) == 1 else sql("({})", join(" AND ", frags))


def any_of(frags: Iterable[Frag]) -> Frag:
    frags = [f for f in frags if f is not FALSE]
    if not frags:
        return FALSE
    if any(f is TRUE for f in frags):
        return TRUE
    return frags[0] if len(frags) == 1 else sql("({})", join(" OR ", frags))


def negate(frag: Frag) -> Frag:
    if frag is TRUE:
        return FALSE
    if frag is FALSE:
        return TRUE
    return sql("(NOT {})", frag)


def stored(value: Any) -> Any:
    """A user's id as its id column holds it (``warehouse.escape.stored_id``: escaped, a long
    one as its digest key): look it up the same way. For the ids a user passes in; never for
    strings read from the database."""
    if isinstance(value, str):
        return stored_id(value)
    if isinstance(value, list):
        return [stored(v) for v in value]
    return value


def _no_nul(value: Any) -> Any:
    """A last guard: a string holding NUL cannot be sent to PostgreSQL, and is never stored;
    its escape is (a string without NUL is left alone: it may be escaped already)."""
    if isinstance(value, str):
        return escape_str(value) if "\x00" in value else value
    if isinstance(value, list):
        return [_no_nul(v) for v in value]
    return value


def render(frag: Frag, placeholder: str) -> tuple[str, list[Any]]:
    """The SQL text for a driver whose placeholder is ``?`` (DuckDB) or ``%s`` (psycopg)."""
    params = [_no_nul(p) for p in frag.params]
    if placeholder == "?":
        return frag.sql, params
    if "%" in frag.sql:
        raise AssertionError("generated SQL must not hold '%'")
    return frag.sql.replace("?", placeholder), params
