"""Times: record values (float epoch seconds, ISO strings) <-> integer microseconds (UTC).

Rows carry times as microseconds since the epoch; each engine turns them into naive UTC
``TIMESTAMP`` values, so both store exactly the same instant (rounded half-even to 1 us).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)
# accepted epoch seconds: 1653 .. 5138 (outside both engines' trouble zones; ms are refused)
_LOW, _HIGH = -1e10, 1e11


def to_micros(value: Any) -> int | None:
    """Microseconds since the epoch, or None when ``value`` is not a time we understand."""
    t = type(value)
    if t is float or t is int:
        if _LOW < value < _HIGH:
            return round(value * 1_000_000)
        return None
    if t is str:
        text = value.strip()
        try:
            return to_micros(float(text))
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is not None:
            dt = dt.astimezone(UTC).replace(tzinfo=None)
        return (dt - EPOCH) // _US
    return None


def micros_to_datetime(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def datetime_to_micros(dt: datetime) -> int:
    """A naive UTC timestamp as microseconds since the epoch (exact)."""
    return (dt - EPOCH) // _US


def datetime_to_epoch(dt: datetime) -> float:
    """A stored timestamp back to float epoch seconds (as records carry them)."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return ((dt - EPOCH) // _US) / 1_000_000
