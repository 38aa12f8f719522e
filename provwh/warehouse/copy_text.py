"""Rows -> PostgreSQL ``COPY ... FROM STDIN`` text, without a connection.

Formatting rows is a third of the client's work in a PostgreSQL load. Done here, it can run in
the processes that normalize (``workers``), and the loading process only sends bytes. The
output is what psycopg's ``write_row`` sends for the same rows: ``\\N`` for NULL, text with
backslash, newline, carriage return and tab escaped, ``t`` / ``f``, numbers as Python writes
them, times (integer microseconds in rows) as ``YYYY-MM-DD HH:MM:SS.ffffff``, bytes as
``\\x`` hex. A value of a type the column does not expect raises ``TypeError``: the caller
then sends the rows through psycopg instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from provwh.warehouse import ddl
from provwh.warehouse.times import micros_to_datetime

_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _text(v: Any) -> str:
    if type(v) is not str:
        raise TypeError(f"text column got {type(v).__name__}")
    if "\\" in v or "\n" in v or "\r" in v or "\t" in v:
        return v.translate(_ESCAPES)
    return v


def _int(v: Any) -> str:
    if type(v) is not int:
        raise TypeError(f"integer column got {type(v).__name__}")
    return str(v)


def _float(v: Any) -> str:
    t = type(v)
    if t is float:
        if math.isfinite(v):
            return repr(v)
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if t is int:
        return str(v)
    raise TypeError(f"float column got {t.__name__}")


def _bool(v: Any) -> str:
    if v is True:
        return "t"
    if v is False:
        return "f"
    raise TypeError(f"boolean column got {type(v).__name__}")


def _bytes(v: Any) -> str:
    if type(v) not in (bytes, bytearray):
        raise TypeError(f"bytes column got {type(v).__name__}")
    return "\\\\x" + v.hex()  # the backslash of bytea's hex form, escaped for COPY


def _time_formatter() -> Callable[[Any], str]:
    last: list[Any] = [None, ""]  # rows of one task share their start time: memoize

    def fmt(us: Any) -> str:
        if us != last[0]:
            if type(us) is not int:
                raise TypeError(f"time column got {type(us).__name__}")
            last[0], last[1] = us, str(micros_to_datetime(us))
        return last[1]

    return fmt


_BY_KIND = {"text": _text, "json": _text, "int": _int, "float": _float, "bool": _bool,
            "bytes": _bytes}  # fmt: skip


def encode(table: str, rows: Iterable[tuple]) -> bytes:
    """The COPY text of ``rows`` (tuples in ``table``'s column order, times in microseconds)."""
    fmts = [_time_formatter() if k == "time" else _BY_KIND[k] for k in ddl.column_kinds(table)]
    width = len(fmts)
    pairs = list(enumerate(fmts))
    lines = []
    for row in rows:
        if len(row) != width:
            raise TypeError(f"{table}: a row of {len(row)} values for {width} columns")
        lines.append("\t".join(["\\N" if row[i] is None else f(row[i]) for i, f in pairs]))
    if not lines:
        return b""
    lines.append("")
    return "\n".join(lines).encode("utf-8")
