"""Per-activity figures: statuses, durations, and what went in and came out."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from provwh.report.records import STATUS_ORDER, activity, duration

# -- timing --------------------------------------------------------------------------------------


def status_counts(tasks: list[dict[str, Any]]) -> dict[str, int]:
    """Status → count, in a fixed order (FINISHED, ERROR, ..., then others by name)."""
    counts = Counter(t["status"] for t in tasks)
    ordered = [s for s in STATUS_ORDER if s in counts]
    ordered += sorted(s for s in counts if s not in STATUS_ORDER)
    return {s: counts[s] for s in ordered}


@dataclass
class ActivityStats:
    name: str
    count: int
    statuses: dict[str, int]
    durations: list[float]
    first_start: float | None
    last_end: float | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.durations) if self.durations else None

    @property
    def min(self) -> float | None:
        return min(self.durations) if self.durations else None

    @property
    def max(self) -> float | None:
        return max(self.durations) if self.durations else None

    @property
    def total(self) -> float | None:
        return sum(self.durations) if self.durations else None


def activity_stats(tasks: list[dict[str, Any]]) -> list[ActivityStats]:
    """Per activity, ordered by first start (activities without times last, by name)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for task in tasks:
        groups[activity(task)].append(task)
    stats = []
    for name, group in groups.items():
        starts = [t["started_at"] for t in group if t.get("started_at") is not None]
        ends = [t["ended_at"] for t in group if t.get("ended_at") is not None]
        durations = [d for d in (duration(t) for t in group) if d is not None]
        stats.append(
            ActivityStats(
                name,
                len(group),
                status_counts(group),
                durations,
                min(starts) if starts else None,
                max(ends) if ends else None,
            )
        )
    stats.sort(key=lambda s: (s.first_start is None, s.first_start or 0.0, s.name))
    return stats


@dataclass
class ActivityRows:
    """A chart's rows when it draws one per activity (too many tasks for a row each)."""

    shown: list[ActivityStats]  # in first-start order
    row: dict[str, int]  # activity -> its row
    tasks: list[dict[str, Any]]  # the tasks of the activities shown
    note: str | None  # what was left out, if anything


def activity_rows(tasks: list[dict[str, Any]], max_rows: int) -> ActivityRows:
    """The ``max_rows`` activities with the most total time, in first-start order."""
    stats = activity_stats(tasks)
    chosen = {s.name for s in sorted(stats, key=lambda s: -(s.total or 0.0))[:max_rows]}
    shown = [s for s in stats if s.name in chosen]
    row = {s.name: i for i, s in enumerate(shown)}
    note = None
    if len(stats) > len(shown):
        note = f"Showing the {len(shown)} activities with the most total time of {len(stats)}."
    return ActivityRows(shown, row, [t for t in tasks if activity(t) in row], note)


# -- tags and subtypes ---------------------------------------------------------------------------


@dataclass
class ActivityTags:
    name: str
    tasks: int
    subtypes: list[str]  # distinct, by name
    tags: dict[str, int]  # tag → tasks carrying it, most carried first, then by name


def _task_tags(task: dict[str, Any]) -> list[str]:
    tags = task.get("tags")
    if isinstance(tags, str):
        return [tags]
    if isinstance(tags, list | tuple | set):
        return sorted({str(t) for t in tags})
    return []


def activity_tags(tasks: list[dict[str, Any]]) -> list[ActivityTags]:
    """Per activity (in ``activity_stats`` order): its tasks' subtypes and tags."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for task in tasks:
        groups[activity(task)].append(task)
    out = []
    for stats in activity_stats(tasks):
        group = groups[stats.name]
        subtypes = sorted({str(t["subtype"]) for t in group if t.get("subtype") not in (None, "")})
        counts = Counter(tag for t in group for tag in _task_tags(t))
        tags = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        out.append(ActivityTags(stats.name, len(group), subtypes, tags))
    return out


# -- inputs and outputs --------------------------------------------------------------------------


@dataclass
class KeySummary:
    activity: str
    direction: str  # "used" | "generated"
    key: str
    types: list[str]
    seen: int
    of: int
    example: str


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def describe_values(values: list[Any]) -> str:
    """A range for numbers, distinct counts and an example otherwise."""
    from provwh.report import fmt

    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if numbers and len(numbers) == len(values):
        lo, hi = min(numbers), max(numbers)
        if lo == hi:
            return fmt.number(lo)
        return f"{fmt.number(lo)} … {fmt.number(hi)}"
    if all(isinstance(v, bool) for v in values):
        counts = Counter(values)
        return ", ".join(f"{fmt.number(k)} ×{counts[k]}" for k in (True, False) if counts[k])
    first = values[0]
    if isinstance(first, dict):
        keys = sorted(str(k) for k in first)
        text = "keys: " + ", ".join(keys[:5]) + (", …" if len(keys) > 5 else "")
    elif isinstance(first, list | tuple):
        text = f"length {len(first)}"
    elif isinstance(first, bytes | bytearray):
        text = f"{len(first)} bytes"
    elif first is None:
        text = "null"
    else:
        text = repr(first) if isinstance(first, str) else str(first)
        text = fmt.short(text, 40)
    hashable = [v for v in values if isinstance(v, str | int | float | bool | type(None))]
    distinct = len(set(hashable)) if len(hashable) == len(values) else None
    if distinct and distinct > 1:
        text += f" ({distinct} distinct)"
    return text


def io_summary(tasks: list[dict[str, Any]], max_keys: int = 20) -> list[KeySummary]:
    """Keys seen in used/generated per activity (first ``max_keys`` per direction, by name)."""
    out: list[KeySummary] = []
    by_activity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for task in tasks:
        by_activity[activity(task)].append(task)
    for stats in activity_stats(tasks):
        group = by_activity[stats.name]
        for direction in ("used", "generated"):
            values: dict[str, list[Any]] = defaultdict(list)
            for task in group:
                fields = task.get(direction)
                if isinstance(fields, dict):
                    for key, value in fields.items():
                        values[str(key)].append(value)
            keys = sorted(values)
            for key in keys[:max_keys]:
                vals = values[key]
                types = sorted({type_name(v) for v in vals})
                out.append(
                    KeySummary(
                        stats.name,
                        direction,
                        key,
                        types,
                        len(vals),
                        len(group),
                        describe_values(vals),
                    )
                )
            if len(keys) > max_keys:
                out.append(
                    KeySummary(
                        stats.name,
                        direction,
                        f"… {len(keys) - max_keys} more keys",
                        [],
                        0,
                        len(group),
                        "",
                    )
                )
    return out
