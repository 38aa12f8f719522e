"""The data of the web UI's charts: a workflow's timeline (Gantt), telemetry, task DAG and
data-lineage graph, and a task's upstream / downstream graph, as JSON for ``static/charts.js``
(drawn there with the vendored Apache ECharts).

Large workflows stay readable by the PDF report's rules (``provwh.report.pdf_charts``): beyond
``GANTT_TASK_ROWS`` timed tasks the timeline has one row per activity (the ``MAX_ROWS`` with
the most total time) and a row's overlapping bars are merged; telemetry series longer than
``MAX_SERIES_POINTS`` snapshots are binned (median of ``SERIES_BINS`` equal intervals); graphs
of more than ``GRAPH_TASK_NODES`` tasks have one node per activity (the ``GRAPH_MAX_NODES``
with the most tasks), their edges counting the task links. Each such choice is a note.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from provwh.report import fmt
from provwh.report import summary as sm
from provwh.report.pdf_charts import (
    GANTT_TASK_ROWS,
    GRAPH_MAX_NODES,
    GRAPH_TASK_NODES,
    MAX_ROWS,
    MAX_SERIES_POINTS,
    OTHER_COLOR,
    SERIES_BINS,
    STATUS_COLORS,
    _binned,
    _merged,
    _order_layers,
    _time_unit,
)
from provwh.serve.html import url

TIMELINE_FIELDS = ["task_id", "activity_id", "status", "started_at", "ended_at"]
TELEMETRY = {  # figure -> path inside a telemetry snapshot
    "cpu": "cpu.percent_all",
    "proc_cpu": "process.cpu_percent",
    "mem_used": "memory.virtual.used",
    "rss": "process.memory.rss",
}
GIB, MIB = 1024**3, 1024**2


def color(status: Any) -> str:
    return STATUS_COLORS.get(status, OTHER_COLOR)


def _r(x: float) -> float:
    return round(x, 6)


# --- timeline -------------------------------------------------------------------------------


def timeline(db: Any, workflow_id: str) -> dict[str, Any]:
    """``{mode, rows, bars: [[row, start, end, status]], unit, span, statuses, notes, tasks}``:
    times since the first task started, in ``unit``."""
    tasks = db.task_query({"workflow_id": workflow_id}, TIMELINE_FIELDS, sort=[("started_at", 1)])
    timed = [t for t in tasks if t.get("started_at") is not None and t.get("ended_at") is not None]
    out: dict[str, Any] = {"mode": "task", "rows": [], "bars": [], "notes": [], "unit": "s",
                           "span": 0, "statuses": [], "tasks": len(tasks)}  # fmt: skip
    if not timed:
        if tasks:
            out["notes"].append(f"{len(tasks)} tasks, none with both start and end times.")
        return out
    notes: list[str] = []
    t0 = min(t["started_at"] for t in timed)
    span = max(max(t["ended_at"] for t in timed) - t0, 1e-9)
    scale, unit = _time_unit(span)
    bars: list[list[Any]] = []
    if len(timed) <= GANTT_TASK_ROWS:
        mode = "task"
        rows = [f"{fmt.short(sm.activity(t), 28)} #{i + 1}" for i, t in enumerate(timed)]
        for i, t in enumerate(timed):
            bars.append([i, _r((t["started_at"] - t0) * scale), _r((t["ended_at"] - t0) * scale),
                         t.get("status"), t["task_id"]])  # fmt: skip
        kept = timed
    else:
        mode = "activity"
        chosen = sm.activity_rows(timed, MAX_ROWS)
        kept = chosen.tasks
        rows = [f"{fmt.short(s.name, 32)} ({s.count})" for s in chosen.shown]
        notes.append(f"{len(timed)} tasks: one row per activity (task count in parentheses);"
                     " overlapping bars of a row are merged.")  # fmt: skip
        if chosen.note:
            notes.append(chosen.note)
        spans: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
        for t in kept:
            spans[(chosen.row[sm.activity(t)], t.get("status") or "")].append(
                (t["started_at"] - t0, t["ended_at"] - t["started_at"])
            )
        joint = span * 0.0005  # a gap this small is under a pixel
        for (row, status), group in sorted(spans.items()):
            for start, width in _merged(group, joint):
                bars.append([row, _r(start * scale), _r((start + width) * scale), status, None])
    untimed = len(tasks) - len(timed)
    if untimed:
        notes.append(f"{untimed} tasks without start and end times are not drawn.")
    out.update(mode=mode, rows=rows, bars=bars, notes=notes, unit=unit, span=_r(span * scale),
               statuses=sorted({str(t.get("status")) for t in kept}))  # fmt: skip
    return out


# --- telemetry ------------------------------------------------------------------------------


def telemetry(db: Any, workflow_id: str, cores: float | None = None) -> dict[str, Any]:
    """``{x, unit, cpu, proc_cpu, mem_used_gib, rss_mib, points, snapshots, notes}``: the
    readings at task start and end, in time order (x since the first reading)."""
    series: list[tuple[float, dict[str, float | None]]] = []
    for when, snap in (("started_at", "telemetry_at_start"), ("ended_at", "telemetry_at_end")):
        paths = {k: f"{snap}.{p}" for k, p in TELEMETRY.items()}
        rows = db.telemetry_timeseries({"workflow_id": workflow_id}, list(paths.values()), when, 0)
        for row in rows:
            x = row.get(when)
            values = {k: _num(row.get(p)) for k, p in paths.items()}
            if isinstance(x, int | float) and any(v is not None for v in values.values()):
                series.append((float(x), values))
    series.sort(key=lambda p: p[0])
    out: dict[str, Any] = {
        "x": [], "unit": "s", "cpu": [], "proc_cpu": [], "mem_used_gib": [], "rss_mib": [],
        "points": 0, "snapshots": len(series), "notes": [],
    }  # fmt: skip
    if not series:
        return out
    notes = [f"Readings at task start and end ({len(series)} snapshots)."]
    if len(series) > MAX_SERIES_POINTS:
        series = _binned(series, SERIES_BINS)
        notes.append(f"Median of each of {len(series)} equal time intervals.")
    if cores and any((v["proc_cpu"] or 0) > 100 * cores for _t, v in series):
        cap = 100 * cores
        series = [(t, {**v, "proc_cpu": _cap(v["proc_cpu"], cap)}) for t, v in series]
        notes.append(f"Process CPU % capped at {cap:.0f} ({cores:.0f} cores).")
    t0 = series[0][0]
    scale, unit = _time_unit(max(series[-1][0] - t0, 1e-9))

    def col(key: str, factor: float = 1.0) -> list[float | None]:
        return [None if v[key] is None else _r(v[key] * factor) for _t, v in series]

    out.update(
        x=[_r((t - t0) * scale) for t, _v in series], unit=unit, cpu=col("cpu"),
        proc_cpu=col("proc_cpu"), mem_used_gib=col("mem_used", 1 / GIB),
        rss_mib=col("rss", 1 / MIB), points=len(series), notes=notes,
    )  # fmt: skip
    return out


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _cap(v: float | None, cap: float) -> float | None:
    return None if v is None else min(v, cap)


# --- graphs ---------------------------------------------------------------------------------


def workflow_graph(db: Any, workflow_id: str, kind: str, depth: int | None) -> dict[str, Any]:
    """The task DAG (``kind="dag"``: the workflow's tasks and every edge between them) or the
    data-lineage graph (``kind="lineage"``: data-flow edges, reaching ``depth`` steps beyond
    the workflow's tasks; None: all the way)."""
    if kind == "dag":
        g = db.lineage_graph(workflow_id=workflow_id, depth=0)
    else:
        g = db.lineage_graph(workflow_id=workflow_id, depth=depth, kinds=["dataflow"])
    return layout(g, home=workflow_id)


def task_graph(db: Any, task_id: str, depth: int | None) -> dict[str, Any]:
    """A task's upstream and downstream tasks to ``depth`` (every edge kind)."""
    g = db.lineage_graph(task_id=task_id, depth=depth)
    out = layout(g, focus=task_id)
    return out


def layout(
    g: dict[str, list[dict[str, Any]]], home: str | None = None, focus: str | None = None
) -> dict[str, Any]:
    """Nodes placed in layers (longest chain) with rows ordered to cross less:
    ``{mode, nodes: [{id, label, x, y, color, size, url, outside, focus, count}],
    edges: [{src, dst, kind, count}], tasks, notes}``; per activity beyond GRAPH_TASK_NODES."""
    tasks = {n["task_id"]: n for n in g["nodes"]}
    notes: list[str] = []

    def outside(t: dict[str, Any]) -> bool:
        return home is not None and t.get("workflow_id") != home

    if len(tasks) <= GRAPH_TASK_NODES:
        mode = "task"
        names = list(tasks)
        edges = [(e["src"], e["dst"], e["kind"], 1) for e in g["edges"]]
        nodes = {
            n: {"id": n, "label": sm.activity(t), "color": color(t.get("status")), "size": 18,
                "url": url("/tasks", n), "outside": outside(t), "focus": n == focus, "count": 1,
                "title": f"{n} · {t.get('status')}"}
            for n, t in tasks.items()
        }  # fmt: skip
    else:
        mode = "activity"

        def key(t: dict[str, Any]) -> str:
            name = sm.activity(t)
            return f"{name} (other workflows)" if outside(t) else name

        keys = {n: key(t) for n, t in tasks.items()}
        counts = Counter(keys.values())
        errors = Counter(keys[n] for n, t in tasks.items() if t.get("status") == "ERROR")
        agg: Counter[tuple[str, str, str]] = Counter(
            (keys[e["src"]], keys[e["dst"]], e["kind"]) for e in g["edges"]
        )
        names = sorted(counts, key=lambda n: (-counts[n], n))
        if len(names) > GRAPH_MAX_NODES:
            notes.append(
                f"Showing the {GRAPH_MAX_NODES} activities with the most tasks of {len(names)}."
            )
            names = names[:GRAPH_MAX_NODES]
        keep = set(names)
        edges = [(a, b, k, n) for (a, b, k), n in sorted(agg.items())
                 if a in keep and b in keep and a != b]  # fmt: skip
        loops = {a for (a, b, _k) in agg if a == b and a in keep}
        top = max(counts.values())
        nodes = {
            n: {"id": n, "label": f"{n} ×{counts[n]}" + (" ↻" if n in loops else ""),
                "color": color("ERROR") if errors[n] else color("FINISHED"),
                "size": round(14 + 36 * math.sqrt(counts[n] / top), 1), "url": None,
                "outside": n.endswith(" (other workflows)"), "focus": False, "count": counts[n],
                "title": f"{n}: {counts[n]} tasks" + (f", {errors[n]} failed" if errors[n] else "")}
            for n in names
        }  # fmt: skip
        notes.append(
            f"{len(tasks)} tasks: one node per activity (× task count); edge labels count the "
            "task links between activities; red: the activity has failed tasks."
        )
        if loops:
            notes.append("↻: tasks of this activity link to tasks of the same activity.")
    preds: dict[str, list[str]] = defaultdict(list)
    for a, b, _k, _n in edges:
        preds[b].append(a)
    pos = (
        _order_layers(names, sm.layers(names, [(a, b) for a, b, _k, _n in edges]), preds)
        if names
        else {}
    )
    for n in names:
        x, y = pos[n]
        nodes[n]["x"], nodes[n]["y"] = x, round(y, 3)
    return {
        "mode": mode,
        "tasks": len(tasks),
        "nodes": [nodes[n] for n in names],
        "edges": [{"src": a, "dst": b, "kind": k, "count": n} for a, b, k, n in edges],
        "notes": notes,
    }
