"""Declarative chart specs resolved into rows: ``DBAPI.resolve_chart_data`` (Flowcept's
dashboard cards).

A spec is ``{"source", "filter", "group_by", "metrics", "x", "y", "sort", "limit"}``; the
answer is ``{"rows": [...], "count": len(rows)}``. In Flowcept's order of precedence:

- ``source="collection_sizes"``: ``{"collection", "sum_bytes"}`` for tasks, objects and
  workflows: the bytes of the matching records as JSON (what a JSON dump of them holds; Flowcept
  sums BSON sizes). The records are read.
- ``group_by`` and/or ``metrics`` (``[{"field", "agg"}]``, agg avg / sum / min / max / count,
  default one count): one row per group (key ``group_by``, or ``"group"``), each metric as
  ``<agg>_<field>`` (``count`` alone without a field); ``count`` counts records, the other
  aggregates numbers; ``field="elapsed"`` is ``ended_at - started_at`` in seconds. Groups in
  the order of their value as text, then cut to ``limit``. Computed in SQL.
- ``x`` and ``y``: ``telemetry_timeseries(filter, y, x, limit)`` (tasks).
- otherwise the records (``sort``: ``[{"field", "order"}]``).

``context`` (a dashboard's filter) is ANDed with the spec's ``filter``.
"""

from __future__ import annotations

from typing import Any

from provwh.query import find as find_mod
from provwh.query.backends import Backend
from provwh.query.filters import FilterCompiler
from provwh.query.frag import Frag, Raw, all_of, join, sql
from provwh.query.paths import collection, resolve
from provwh.query.summaries import telemetry_timeseries

SIZE_COLLECTIONS = ("tasks", "objects", "workflows")
METRICS = ("avg", "sum", "min", "max", "count")


def resolve_chart_data(backend: Backend, data: dict, context: dict | None = None) -> dict:
    if not isinstance(data, dict):
        raise ValueError(f"a chart spec must be a dict, got {data!r}")
    card = data.get("filter") or {}
    if not context:
        flt = dict(card)
    elif not card:
        flt = dict(context)
    else:
        flt = {"$and": [context, card]}
    source = data.get("source", "tasks")
    limit = find_mod.limit_of(data.get("limit") or 1000)
    group_by = data.get("group_by")
    metrics = data.get("metrics") or []
    x_field, y_fields = data.get("x"), data.get("y") or []

    if source == "collection_sizes":
        rows = [{"collection": c, "sum_bytes": _size(backend, c, flt)} for c in SIZE_COLLECTIONS]
    elif group_by or metrics:
        rows = _grouped(backend, source, flt, group_by, metrics or [{"field": "", "agg": "count"}])
        rows = rows[:limit]
    elif x_field and y_fields:
        rows = telemetry_timeseries(backend, flt, y_fields, x_field, limit)[:limit]
    else:
        sort = [(s["field"], s["order"]) for s in data.get("sort") or []]
        rows = find_mod.find(backend, collection(source), flt, None, limit, sort or None)
    return {"rows": rows, "count": len(rows)}


def metric_key(metric: dict) -> str:
    """A metric's key in the rows: ``<agg>_<field>``, or ``<agg>`` without a field."""
    field, agg = metric.get("field", ""), metric.get("agg", "count")
    return f"{agg}_{field}" if field else agg


def _grouped(
    backend: Backend, source: str, flt: dict, group_by: str | None, metrics: list
) -> list[dict[str, Any]]:
    coll = collection(source)
    comp = FilterCompiler(coll, backend.dialect)
    d = backend.dialect
    joins: list[Frag] = []
    select: list[Frag] = []
    decode = None
    if group_by:
        select, decode = find_mod._group_exprs(comp, resolve(coll, group_by), joins)
    n_group = len(select)
    keys = []
    for metric in metrics:
        if not isinstance(metric, dict):
            raise ValueError(f"a metric must be a dict {{field, agg}}, got {metric!r}")
        field, agg = metric.get("field", ""), metric.get("agg", "count")
        if agg not in METRICS:
            raise ValueError(f"unknown metric agg {agg!r}; supported: {', '.join(METRICS)}")
        keys.append((metric_key(metric), field == "elapsed" and agg != "count"))
        if agg == "count":
            select.append(Frag("count(*)"))
        elif field == "elapsed":
            select.append(_elapsed(d, coll, agg))
        else:
            select.append(find_mod._agg_expr(comp, agg, resolve(coll, field), joins))
    q = sql(
        f"SELECT {{}} FROM {coll.table} t {{}} WHERE {{}}",
        join(", ", select),
        join(" ", joins),
        all_of([comp.where(flt), find_mod.latest_only(coll)]),
    )
    if n_group:
        q = sql("{} GROUP BY {}", q, Raw(", ".join(str(i + 1) for i in range(n_group))))
    name = group_by or "group"
    out = []
    for row in backend.query(q)[1]:
        rec = {name: decode(row[:n_group]) if decode else None}
        for (key, seconds), value in zip(keys, row[n_group:], strict=True):
            rec[key] = value / 1_000_000 if seconds and value is not None else value
        out.append(rec)
    out.sort(key=lambda r: str(r[name]))
    return out


def _elapsed(d: Any, coll: Any, agg: str) -> Frag:
    """An aggregate of ``ended_at - started_at`` in microseconds (NULL without both times)."""
    if "started_at" not in coll.columns or "ended_at" not in coll.columns:
        return Frag("CAST(NULL AS DOUBLE PRECISION)")
    dur = d.duration_us(Frag('t."started_at"'), Frag('t."ended_at"'))
    return sql(f"CAST({agg}({{}}) AS DOUBLE PRECISION)", dur)


def _size(backend: Backend, name: str, flt: dict) -> int:
    from provwh.core.serialize import dumps

    records = find_mod.find(backend, collection(name), flt, None, 0, None)
    return sum(len(dumps(r)) for r in records)
