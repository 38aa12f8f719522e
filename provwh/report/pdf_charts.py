"""The PDF's chart pages: Gantt, elapsed time per activity, telemetry, dependency graph.

Large runs stay readable: rows become activities, long lists keep their largest entries,
series are binned and big graphs are drawn per activity; each such choice is a note on the
page and in what the page function returns.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from provwh.report import fmt
from provwh.report import summary as sm
from provwh.report.pdf_pages import MARGIN, PAGE, PdfWriter, plain

STATUS_COLORS = {
    "FINISHED": "#4C78A8",
    "ERROR": "#E45756",
    "RUNNING": "#F58518",
    "SUBMITTED": "#B279A2",
    "WAITING": "#EECA3B",
}
OTHER_COLOR = "#9D9D9D"
GANTT_TASK_ROWS = 50  # up to this many tasks: one row per task, else one row per activity
MAX_ROWS = 40  # activities in the Gantt and bar charts
MAX_SERIES_POINTS = 2000  # longer telemetry series are binned
SERIES_BINS = 400
GRAPH_TASK_NODES = 60  # up to this many tasks: a node per task, else a node per activity
GRAPH_MAX_NODES = 40


def _color(status: str) -> str:
    return STATUS_COLORS.get(status, OTHER_COLOR)


# -- charts --------------------------------------------------------------------------------------


def _chart_page(writer: PdfWriter, title: str, notes: list[str]) -> tuple[Any, Any]:
    fig = writer.figure()
    fig.suptitle(plain(title), fontsize=13, fontweight="bold", x=MARGIN / PAGE[0], ha="left")
    if notes:
        fig.text(
            MARGIN / PAGE[0], 0.055, "\n".join(notes), fontsize=7.5, color="#444444", va="bottom"
        )
    return fig, notes


def _origin(wf: sm.WorkflowRun) -> float | None:
    """Time zero of the charts: the first task start (the workflow's own start may come much
    earlier, e.g. while capture starts up, and would squeeze every task to the right)."""
    starts = [t["started_at"] for t in wf.tasks if t.get("started_at") is not None]
    return min(starts) if starts else wf.started_at


def _time_unit(span: float) -> tuple[float, str]:
    if span < 1e-3:
        return 1e6, "µs"
    if span < 2:
        return 1e3, "ms"
    if span < 600:
        return 1.0, "s"
    if span < 36000:
        return 1 / 60, "min"
    return 1 / 3600, "h"


def _status_legend(ax: Any, statuses: list[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=_color(s), label=s) for s in statuses]
    if handles:
        _legend_above(ax, handles)


def _legend_above(ax: Any, handles: list[Any]) -> Any:
    """A legend in a row above the plot, where it can hide no data."""
    return ax.legend(
        handles=handles,
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=len(handles),
        fontsize=7,
        frameon=False,
    )


def _merged(spans: list[tuple[float, float]], joint: float) -> list[tuple[float, float]]:
    """Bars of one row and colour that overlap (or nearly touch) as one bar: the page looks
    the same, and 50,000 back-to-back tasks draw as a few paths instead of 50,000."""
    out: list[list[float]] = []
    for start, width in sorted(spans):
        if out and start <= out[-1][1] + joint:
            out[-1][1] = max(out[-1][1], start + width)
        else:
            out.append([start, start + width])
    return [(a, b - a) for a, b in out]


def gantt_page(writer: PdfWriter, wf: sm.WorkflowRun, title: str) -> list[str]:
    timed = [t for t in wf.tasks if t.get("started_at") is not None and t.get("ended_at")]
    if not timed:
        return []
    notes: list[str] = []
    t0 = _origin(wf)
    span = max(max(t["ended_at"] for t in timed) - t0, 1e-9)
    scale, unit = _time_unit(span)
    min_width = span * 0.004
    if len(timed) <= GANTT_TASK_ROWS:
        rows = [f"{fmt.short(sm.activity(t), 28)}  #{i + 1}" for i, t in enumerate(timed)]
        row_of = {id(t): i for i, t in enumerate(timed)}
        kept = timed
    else:
        chosen = sm.activity_rows(timed, MAX_ROWS)
        kept = chosen.tasks
        row_of = {id(t): chosen.row[sm.activity(t)] for t in kept}
        rows = [f"{fmt.short(s.name, 32)} ({s.count})" for s in chosen.shown]
        notes.append(f"{len(timed)} tasks: one row per activity (task count in parentheses).")
        if chosen.note:
            notes.append(chosen.note)
    untimed = len(wf.tasks) - len(timed)
    if untimed:
        notes.append(f"{untimed} tasks without start and end times are not drawn.")
    notes.append(f"Bars shorter than {fmt.seconds(min_width)} are widened to stay visible.")
    fig, _ = _chart_page(writer, title, notes)
    ax = _bar_axes(fig, len(rows), 0.71)
    bars: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
    for task in kept:
        start = (task["started_at"] - t0) * scale
        width = max(task["ended_at"] - task["started_at"], min_width) * scale
        bars[(row_of[id(task)], task["status"])].append((start, width))
    order = {"FINISHED": 0}  # other statuses (errors) drawn last, on top
    joint = span * scale * 0.0005  # a gap this small is under a pixel on the page
    for (row, status), spans in sorted(
        bars.items(), key=lambda kv: (order.get(kv[0][1], 1), kv[0])
    ):
        spans = _merged(spans, joint)
        ax.broken_barh(spans, (row - 0.4, 0.8), facecolors=_color(status), linewidth=0)
    ax.set_yticks(range(len(rows)), rows, fontsize=_label_size(len(rows)))
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, span * scale * 1.02)
    ax.set_xlabel(f"time since the first task started ({unit})", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="#DDDDDD", linewidth=0.5)
    ax.set_axisbelow(True)
    _status_legend(ax, list(sm.status_counts(kept)))
    writer.save(fig)
    return notes


def _bar_axes(fig: Any, rows: int, width: float) -> Any:
    """Axes under the title whose height grows with the rows (few rows: no giant bars)."""
    height = min(0.74, 0.12 + 0.07 * rows)
    return fig.add_axes((0.25, 0.90 - height, width, height))


def _label_size(n: int) -> float:
    return 8 if n <= 20 else 7 if n <= 30 else 6 if n <= 45 else 5


def elapsed_page(writer: PdfWriter, wf: sm.WorkflowRun, title: str) -> list[str]:
    stats = [s for s in sm.activity_stats(wf.tasks) if s.durations]
    if not stats:
        return []
    notes = []
    stats.sort(key=lambda s: (-(s.total or 0.0), s.name))
    if len(stats) > MAX_ROWS:
        notes.append(f"Showing the {MAX_ROWS} activities with the most total time of {len(stats)}.")
        stats = stats[:MAX_ROWS]
    notes.append("Bar: total task time per activity; label: task count and median duration.")
    fig, _ = _chart_page(writer, title, notes)
    ax = _bar_axes(fig, len(stats), 0.65)
    biggest = max(s.total or 0.0 for s in stats) or 1e-9
    scale, unit = _time_unit(biggest)
    totals = [(s.total or 0.0) * scale for s in stats]
    errors = [s.statuses.get("ERROR", 0) > 0 for s in stats]
    ax.barh(
        range(len(stats)),
        totals,
        color=[_color("ERROR") if e else _color("FINISHED") for e in errors],
    )
    for i, s in enumerate(stats):
        ax.text(
            totals[i],
            i,
            f"  n={s.count}, median {fmt.seconds(s.median)}",
            va="center",
            fontsize=_label_size(len(stats)) - 1,
        )
    ax.set_yticks(
        range(len(stats)), [fmt.short(s.name, 32) for s in stats], fontsize=_label_size(len(stats))
    )
    ax.set_ylim(len(stats) - 0.5, -0.5)
    ax.set_xlim(0, max(totals) * 1.3 or 1)
    ax.set_xlabel(f"total elapsed time ({unit})", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="#DDDDDD", linewidth=0.5)
    ax.set_axisbelow(True)
    if any(errors):
        _status_legend(ax, ["FINISHED", "ERROR"])
        ax.get_legend().texts[1].set_text("has errors")
        ax.get_legend().texts[0].set_text("no errors")
    writer.save(fig)
    return notes


def telemetry_page(writer: PdfWriter, wf: sm.WorkflowRun, title: str) -> list[str]:
    res = sm.of_workflow(wf)
    series = res.series
    if not series:
        return []
    notes = [f"Readings at task start and end ({len(series)} snapshots from {res.captured} tasks)."]
    t0 = _origin(wf)
    t0 = series[0][0] if t0 is None else min(t0, series[0][0])
    if len(series) > MAX_SERIES_POINTS:
        series = _binned(series, SERIES_BINS)
        notes.append(f"Median of each of {len(series)} equal time intervals.")
    cores = _num(sm.dig(wf.record, "machine_info", "cpu", "logical"))
    if cores and any((v["proc_cpu"] or 0) > 100 * cores for _t, v in series):
        cap = 100 * cores
        series = [(t, {**v, "proc_cpu": min(v["proc_cpu"], cap)}) for t, v in series]
        notes.append(
            f"Process CPU % capped at {cap:.0f} ({cores:.0f} cores): readings over very short "
            "intervals overshoot."
        )
    span = max(series[-1][0] - t0, 1e-9)
    scale, unit = _time_unit(span)
    xs = [(t - t0) * scale for t, _v in series]
    marker = "o" if len(series) <= 200 else None
    fig, _ = _chart_page(writer, title, notes)
    ax_cpu = fig.add_axes((0.08, 0.55, 0.84, 0.33))
    ax_mem = fig.add_axes((0.08, 0.14, 0.84, 0.33), sharex=ax_cpu)

    def plot(ax: Any, key: str, label: str, color: str, factor: float = 1.0) -> bool:
        pts = [
            (x, v[key] * factor)
            for x, (_t, v) in zip(xs, series, strict=True)
            if v[key] is not None
        ]
        if not pts:
            return False
        ax.plot(
            *zip(*pts, strict=True),
            label=label,
            color=color,
            linewidth=1,
            marker=marker,
            markersize=2.5,
        )
        return True

    drew = [
        plot(ax_cpu, "cpu", "system CPU %", "#4C78A8"),
        plot(ax_cpu, "proc_cpu", "process CPU %", "#F58518"),
        plot(ax_cpu, "gpu_util", "GPU utilization %", "#54A24B"),
    ]
    ax_cpu.set_ylabel("percent", fontsize=8)
    ax_cpu.set_title("CPU", fontsize=9, loc="left")
    if any(drew):
        _legend_above(ax_cpu, ax_cpu.get_legend_handles_labels()[0])
    else:
        ax_cpu.text(0.5, 0.5, "no CPU readings", ha="center", transform=ax_cpu.transAxes)
    gib, mib = 1 / 1024**3, 1 / 1024**2
    mem = plot(ax_mem, "mem_used", "system memory used (GiB)", "#4C78A8", gib)
    ax_mem.set_ylabel("GiB", fontsize=8)
    ax_rss = ax_mem.twinx()
    rss = plot(ax_rss, "rss", "process RSS (MiB)", "#E45756", mib)
    ax_rss.set_ylabel("MiB", fontsize=8)
    ax_mem.set_title("Memory", fontsize=9, loc="left")
    handles = ax_mem.get_legend_handles_labels()[0] + ax_rss.get_legend_handles_labels()[0]
    if mem or rss:
        _legend_above(ax_mem, handles)
    ax_mem.set_xlabel(f"time since the first task started ({unit})", fontsize=8)
    for ax in (ax_cpu, ax_mem, ax_rss):
        ax.tick_params(labelsize=7)
        ax.yaxis.get_major_formatter().set_useOffset(False)
    ax_cpu.grid(color="#DDDDDD", linewidth=0.5)
    ax_mem.grid(color="#DDDDDD", linewidth=0.5)
    writer.save(fig)
    return notes


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _binned(
    series: list[tuple[float, dict[str, float | None]]], bins: int
) -> list[tuple[float, dict[str, float | None]]]:
    """Median of each figure per equal time interval (keeps a long series readable)."""
    import statistics

    t0, t1 = series[0][0], series[-1][0]
    width = (t1 - t0) / bins or 1e-9
    groups: dict[int, list[dict[str, float | None]]] = defaultdict(list)
    for t, values in series:
        groups[min(int((t - t0) / width), bins - 1)].append(values)
    out = []
    for index in sorted(groups):
        members = groups[index]
        merged: dict[str, float | None] = {}
        for key in members[0]:
            vals = [m[key] for m in members if m[key] is not None]
            merged[key] = statistics.median(vals) if vals else None
        out.append((t0 + (index + 0.5) * width, merged))
    return out


def _order_layers(
    nodes: list[str], layer: dict[str, int], preds: dict[str, list[str]]
) -> dict[str, tuple[int, float]]:
    """Node → (layer, row): rows ordered by the mean row of predecessors (fewer crossings)."""
    by_layer: dict[int, list[str]] = defaultdict(list)
    for n in nodes:
        by_layer[layer[n]].append(n)
    pos: dict[str, tuple[int, float]] = {}
    tallest = max(len(m) for m in by_layer.values())
    for lay in sorted(by_layer):
        members = by_layer[lay]
        rank = {n: i for i, n in enumerate(members)}

        def key(n: str, rank=rank) -> tuple[float, int]:
            ys = [pos[p][1] for p in preds.get(n, []) if p in pos]
            return (sum(ys) / len(ys) if ys else -1.0, rank[n])

        members.sort(key=key)
        step = tallest / len(members)  # each layer spread over the full height
        for i, n in enumerate(members):
            pos[n] = (lay, (i + 0.5) * step - tallest / 2)
    return pos


def graph_page(writer: PdfWriter, wf: sm.WorkflowRun, title: str) -> list[str]:
    lin = sm.lineage(wf.tasks)
    if not lin.edges:
        return []
    notes: list[str] = []
    tasks = {sm.task_key(t): t for t in wf.tasks}
    if len(lin.nodes) <= GRAPH_TASK_NODES:
        nodes = list(lin.nodes)
        layer = lin.layer
        edges = [(a, b, "parent", 1) for a, b in lin.parent_edges]
        edges += [(a, b, "dependency", 1) for a, b in lin.dependency_edges]
        labels = {n: sm.activity(tasks[n]) for n in nodes}
        colors = {n: _color(tasks[n]["status"]) for n in nodes}
        sizes = dict.fromkeys(nodes, 40.0)
        notes.append("One node per task, colored by status; layers follow the longest chain.")
    else:
        counts = Counter(sm.activity(t) for t in wf.tasks)
        errors = Counter(sm.activity(t) for t in wf.tasks if t["status"] == "ERROR")
        act = {k: sm.activity(t) for k, t in tasks.items()}
        agg: Counter[tuple[str, str, str]] = Counter()
        for kind, pairs in (("parent", lin.parent_edges), ("dependency", lin.dependency_edges)):
            for a, b in pairs:
                agg[(act[a], act[b], kind)] += 1
        names = [s.name for s in sm.activity_stats(wf.tasks)]
        if len(names) > GRAPH_MAX_NODES:
            keep = set(sorted(names, key=lambda n: (-counts[n], n))[:GRAPH_MAX_NODES])
            notes.append(
                f"Showing the {GRAPH_MAX_NODES} activities with the most tasks of {len(names)}."
            )
            names = [n for n in names if n in keep]
        keep = set(names)
        edges = [
            (a, b, kind, n) for (a, b, kind), n in agg.items() if a in keep and b in keep and a != b
        ]
        loops = sorted({a for (a, b, _k) in agg if a == b and a in keep})
        nodes = names
        layer = sm.layers(nodes, [(a, b) for a, b, _k, _n in edges])
        labels = {n: f"{n} ×{counts[n]}" + (" ↻" if n in loops else "") for n in nodes}
        colors = {n: _color("ERROR") if errors[n] else _color("FINISHED") for n in nodes}
        top = max(counts.values())
        sizes = {n: 30 + 170 * math.sqrt(counts[n] / top) for n in nodes}
        notes.append(
            f"{len(lin.nodes)} tasks: one node per activity (× task count), edge labels count "
            "the task links between activities; red: activity has failed tasks."
        )
        if loops:
            notes.append("↻: tasks of this activity are parents of tasks of the same activity.")
    preds: dict[str, list[str]] = defaultdict(list)
    for a, b, _k, _n in edges:
        preds[b].append(a)
    pos = _order_layers(nodes, layer, preds)
    fig, _ = _chart_page(writer, title, notes)
    ax = fig.add_axes((0.04, 0.14, 0.92, 0.76))
    ax.set_axis_off()
    n_layers = max(p[0] for p in pos.values()) + 1
    tallest = max(Counter(p[0] for p in pos.values()).values())
    layer_inches = PAGE[0] * 0.92 / n_layers
    font = _label_size(tallest)
    max_chars = max(6, int(layer_inches / (font * 0.55 / 72)) - 3)

    from matplotlib.patches import FancyArrowPatch

    for a, b, kind, count in edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        dashed = kind == "dependency"
        ax.add_patch(
            FancyArrowPatch(
                (xa, ya),
                (xb, yb),
                arrowstyle="-|>",
                mutation_scale=8,
                color="#3A6EA5" if dashed else "#888888",
                linestyle="--" if dashed else "-",
                linewidth=0.6 + 0.5 * math.log10(count),
                shrinkA=4,
                shrinkB=4,
                zorder=1,
            )
        )
        if count > 1:
            ax.text(
                (xa + xb) / 2,
                (ya + yb) / 2,
                str(count),
                fontsize=6,
                color="#555555",
                ha="center",
                va="center",
                backgroundcolor="white",
                zorder=2,
            )
    xs = [pos[n][0] for n in nodes]
    ys = [pos[n][1] for n in nodes]
    ax.scatter(
        xs,
        ys,
        s=[sizes[n] for n in nodes],
        c=[colors[n] for n in nodes],
        zorder=3,
        edgecolors="white",
        linewidths=0.5,
    )
    if tallest <= 60:
        for n in nodes:
            x, y = pos[n]
            ax.annotate(
                fmt.short(labels[n], max_chars),
                (x, y),
                xytext=(0, 4),
                textcoords="offset points",
                fontsize=font,
                ha="center",
                va="bottom",
                zorder=4,
            )
    else:
        notes.append("Too many nodes in one layer for labels.")
    ax.set_xlim(-0.3, n_layers - 0.2)
    ax.set_ylim(tallest / 2 + 0.3, -tallest / 2 - 0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="#888888", label="parent → child")]
    if any(k == "dependency" for _a, _b, k, _n in edges):
        handles.append(Line2D([], [], color="#3A6EA5", linestyle="--", label="dependency → task"))
    _legend_above(ax, handles)
    writer.save(fig)
    return notes


def campaign_gantt_page(writer: PdfWriter, data: sm.Dataset) -> list[str]:
    wfs = [wf for wf in data.workflows if wf.started_at is not None and wf.ended_at is not None]
    if not wfs:
        return []
    notes = []
    if len(wfs) > MAX_ROWS * 2:
        notes.append(f"Showing the first {MAX_ROWS * 2} of {len(wfs)} workflows.")
        wfs = wfs[: MAX_ROWS * 2]
    t0 = min(wf.started_at for wf in wfs)
    span = max(max(wf.ended_at for wf in wfs) - t0, 1e-9)
    scale, unit = _time_unit(span)
    fig, _ = _chart_page(writer, "Workflows over time", notes)
    ax = _bar_axes(fig, len(wfs), 0.71)
    for i, wf in enumerate(wfs):
        width = max(wf.ended_at - wf.started_at, span * 0.004)
        ax.broken_barh(
            [((wf.started_at - t0) * scale, width * scale)],
            (i - 0.4, 0.8),
            facecolors=_color(wf.status),
        )
    labels = [fmt.short(f"{wf.label} ({fmt.short_id(wf.workflow_id, 8)})", 40) for wf in wfs]
    ax.set_yticks(range(len(wfs)), labels, fontsize=_label_size(len(wfs)))
    ax.set_ylim(len(wfs) - 0.5, -0.5)
    ax.set_xlim(0, span * scale * 1.02)
    ax.set_xlabel(f"time since the first workflow started ({unit})", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="#DDDDDD", linewidth=0.5)
    ax.set_axisbelow(True)
    _status_legend(ax, sorted({wf.status for wf in wfs}))
    writer.save(fig)
    return notes


# -- the document ------------------------------------------------------------------------------
