"""Text formatting shared by the card and the PDF, so both show the same numbers."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


def iso_utc(t: float | None) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds (``2025-01-02T03:04:05.678Z``)."""
    if t is None:
        return "—"
    try:
        dt = datetime.fromtimestamp(t, UTC)
    except (OverflowError, OSError, ValueError):
        return str(t)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def seconds(value: float | None) -> str:
    """A duration in the unit that keeps 2-3 significant digits readable (µs to hours)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v == 0:
        return "0 s"
    if v < 1e-6:
        return f"{sign}<1 µs"
    if v < 1e-3:
        return f"{sign}{v * 1e6:.0f} µs"
    if v < 1:
        return f"{sign}{v * 1e3:.1f} ms"
    if v < 60:
        return f"{sign}{v:.2f} s"
    if v < 3600:
        m, s = divmod(v, 60)
        return f"{sign}{int(m)} min {s:.0f} s"
    h, rest = divmod(v, 3600)
    return f"{sign}{int(h)} h {int(rest // 60)} min"


def nbytes(value: float | None, signed: bool = False) -> str:
    """A byte count in binary units; ``signed`` adds ``+`` to positive deltas."""
    if value is None:
        return "—"
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    v = float(abs(value))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            return f"{sign}{v:.0f} {unit}" if unit == "B" else f"{sign}{v:.1f} {unit}"
        v /= 1024
    return f"{sign}{v:.1f} TiB"  # pragma: no cover


def number(value: Any) -> str:
    """A number as short text: integers as is, floats with up to 4 significant digits."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return f"{value:.1f}"
        return f"{value:.4g}"
    return str(value)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def short(text: Any, limit: int = 40) -> str:
    """One line of at most ``limit`` characters (an ellipsis marks a cut)."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def short_id(value: Any, limit: int = 12) -> str:
    s = str(value)
    return s if len(s) <= limit else s[:limit] + "…"
