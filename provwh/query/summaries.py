"""Summaries over tasks: ``DBAPI.task_summary`` and ``DBAPI.telemetry_timeseries``."""

from __future__ import annotations

from typing import Any

from provwh.query.backends import Backend
from provwh.query.filters import FilterCompiler
from provwh.query.find import columns_for, limit_of
from provwh.query.frag import Frag, Raw, join, sql
from provwh.query.paths import COLLATE, collection, resolve
from provwh.query.results import get_path, to_record
from provwh.warehouse.escape import unescape_text
from provwh.warehouse.times import datetime_to_epoch


def task_summary(backend: Backend, filter: dict | None = None) -> dict[str, Any]:
    """Count, status counts, per-activity count / avg / min / max / sum duration, time range.

    Durations are ``ended_at - started_at`` in seconds, over tasks with both times (the
    average is over those tasks, not over all tasks as Flowcept's LMDB fallback does).
    """
    coll = collection("tasks")
    d = backend.dialect
    comp = FilterCompiler(coll, d)
    dur = d.duration_us(Frag('t."started_at"'), Frag('t."ended_at"'))
    q = sql(
        "SELECT a_, s_, count(*), count(d_), sum(d_), min(d_), max(d_), min(t0_), max(t1_)"
        ' FROM (SELECT {} AS a_, t."status" AS s_, {} AS d_,'
        ' t."started_at" AS t0_, t."ended_at" AS t1_ FROM tasks t WHERE {}) AS x_'
        " GROUP BY 1, 2",
        comp.text_col("activity_id"),  # a long activity id as itself, not its digest key
        dur,
        comp.where(filter),
    )
    return _summary(backend.query(q)[1])


def telemetry_timeseries(
    backend: Backend,
    filter: dict | None,
    fields: list[str],
    x_field: str = "started_at",
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Rows ``{x_field, task_id, activity_id, <field>: value...}`` ordered by x.

    The first ``limit`` rows by x (0: all; Flowcept limits before sorting); tasks without
    an x value come last.
    """
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, (list, tuple)) or not all(isinstance(f, str) for f in fields):
        raise ValueError(f"fields must be a list of dotted field names, got {fields!r}")
    if not isinstance(x_field, str) or not x_field:
        raise ValueError(f"x_field must be a field name, got {x_field!r}")
    limit = limit_of(limit)
    coll = collection("tasks")
    comp = FilterCompiler(coll, backend.dialect)
    heads = {f.split(".")[0] for f in [*fields, x_field]} | {"task_id", "activity_id"}
    columns = columns_for(coll, (sorted(heads), True), backend.dialect)
    p = resolve(coll, x_field)
    order = join(
        ", ",
        [
            sql("CASE WHEN {} THEN 0 ELSE 1 END", comp._present(p)),
            *comp.sort_keys(x_field, False),
            sql('t."task_id"{}', Raw(COLLATE)),
        ],
    )
    q = sql(
        f"SELECT {', '.join(columns)} FROM tasks t {{}} WHERE {{}} ORDER BY {{}}",
        comp.sort_joins(),
        comp.where(filter),
        order,
    )
    if limit:
        q = sql("{} LIMIT {}", q, Raw(str(limit)))
    names, rows = backend.query(q)
    out = []
    for row in rows:
        rec = to_record(coll, names, row)
        item = {
            x_field: get_path(rec, x_field)[1],
            "task_id": rec.get("task_id"),
            "activity_id": rec.get("activity_id"),
        }
        item.update({f: get_path(rec, f)[1] for f in fields})
        out.append(item)
    return out


def _summary(rows: list[tuple]) -> dict[str, Any]:
    """Flowcept's task summary from (activity, status, count, timed, sum, min, max, t0, t1)."""
    status_counts: dict[str, int] = {}
    acts: dict[Any, dict[str, Any]] = {}
    total = 0
    t_min = t_max = None
    for activity, status, n, timed, s_us, mn, mx, t0, t1 in rows:
        activity = unescape_text(activity) if type(activity) is str else activity
        status = unescape_text(status) if status else "UNKNOWN"
        total += n
        status_counts[status] = status_counts.get(status, 0) + n
        a = acts.setdefault(
            activity,
            {"activity_id": activity, "count": 0, "status_counts": {}, "_n": 0, "_sum": 0},
        )
        a["count"] += n
        a["status_counts"][status] = a["status_counts"].get(status, 0) + n
        if timed:
            a["_n"] += timed
            a["_sum"] += int(s_us)
            a["_min"] = mn if a.get("_min") is None else min(a["_min"], mn)
            a["_max"] = mx if a.get("_max") is None else max(a["_max"], mx)
        if t0 is not None:
            t0 = datetime_to_epoch(t0)
            t_min = t0 if t_min is None else min(t_min, t0)
        if t1 is not None:
            t1 = datetime_to_epoch(t1)
            t_max = t1 if t_max is None else max(t_max, t1)
    stats = []
    for a in acts.values():
        n = a.pop("_n")
        s = a.pop("_sum")
        mn, mx = a.pop("_min", None), a.pop("_max", None)
        a["avg_duration"] = s / n / 1_000_000 if n else None
        a["min_duration"] = mn / 1_000_000 if n else None
        a["max_duration"] = mx / 1_000_000 if n else None
        a["sum_duration"] = s / 1_000_000 if n else None
        stats.append(a)
    stats.sort(key=lambda a: str(a["activity_id"]))
    return {
        "count": total,
        "status_counts": status_counts,
        "activity_stats": stats,
        "time_range": {"min_started_at": t_min, "max_ended_at": t_max},
    }
