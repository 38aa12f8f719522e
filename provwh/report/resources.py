"""Resource usage from telemetry snapshots: per activity and for the whole run."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from provwh.report.activities import activity_stats
from provwh.report.records import WorkflowRun, activity

# -- telemetry -----------------------------------------------------------------------------------


def dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _num(value: Any) -> float | None:
    """A reading as a float; NaN and infinities are no reading (nor a typed column's)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value - value == 0:
        return float(value)
    return None


# the typed telemetry columns holding what ``snapshot_values`` reads (warehouse.telemetry), so
# that a report from the database reads them instead of every snapshot's JSON
TELEMETRY_COLUMNS_READ = (
    "cpu_percent", "proc_cpu_percent", "mem_used", "mem_percent", "proc_rss", "gpu",
)  # fmt: skip


def snapshot_values(tel: Any) -> dict[str, float | None]:
    """The figures the report uses from one telemetry snapshot (None when not captured)."""
    gpu_util = gpu_used = None
    gpus = dig(tel, "gpu")
    if isinstance(gpus, dict):
        utils = [_num(dig(g, "utilization", "gpu")) for g in gpus.values()]
        utils = [u for u in utils if u is not None]
        used = [_num(dig(g, "used")) for g in gpus.values()]
        used = [u for u in used if u is not None]
        gpu_util = sum(utils) / len(utils) if utils else None
        gpu_used = sum(used) if used else None
    return {
        "cpu": _num(dig(tel, "cpu", "percent_all")),
        "proc_cpu": _num(dig(tel, "process", "cpu_percent")),
        "mem_used": _num(dig(tel, "memory", "virtual", "used")),
        "mem_percent": _num(dig(tel, "memory", "virtual", "percent")),
        "rss": _num(dig(tel, "process", "memory", "rss")),
        "gpu_util": gpu_util,
        "gpu_used": gpu_used,
    }


def has_telemetry(task: dict[str, Any]) -> bool:
    return bool(task.get("telemetry_at_start")) or bool(task.get("telemetry_at_end"))


@dataclass
class ActivityResources:
    name: str
    tasks: int
    cpu: float | None  # mean system CPU % at task end
    proc_cpu: float | None  # mean process CPU % at task end
    mem_delta: float | None  # mean change of system memory used (bytes)
    rss_delta: float | None  # mean change of process RSS (bytes)
    rss_peak: float | None
    gpu_util: float | None


@dataclass
class Resources:
    captured: int
    total: int
    activities: list[ActivityResources]
    series: list[tuple[float, dict[str, float | None]]]  # (time, snapshot values), by time

    def span(self, key: str) -> tuple[float, float, float] | None:
        """(min, mean, max) of one figure over all snapshots."""
        vals = [v[key] for _t, v in self.series if v.get(key) is not None]
        if not vals:
            return None
        return min(vals), sum(vals) / len(vals), max(vals)


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def resources(tasks: list[dict[str, Any]]) -> Resources:
    """Per-activity CPU and memory from the start/end snapshots, and the time series."""
    with_tel = [t for t in tasks if has_telemetry(t)]
    series: list[tuple[float, dict[str, float | None]]] = []
    per_activity: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for task in with_tel:
        start = snapshot_values(task.get("telemetry_at_start"))
        end = snapshot_values(task.get("telemetry_at_end"))
        per_activity[activity(task)].append((start, end))
        if task.get("telemetry_at_start") and task.get("started_at") is not None:
            series.append((task["started_at"], start))
        if task.get("telemetry_at_end") and task.get("ended_at") is not None:
            series.append((task["ended_at"], end))
    series.sort(key=lambda item: item[0])
    rows = []
    for stats in activity_stats(with_tel):
        pairs = per_activity[stats.name]

        def delta(key: str, pairs=pairs) -> float | None:
            return _mean(
                [
                    e[key] - s[key] if e[key] is not None and s[key] is not None else None
                    for s, e in pairs
                ]
            )

        rss = [v for s, e in pairs for v in (s["rss"], e["rss"]) if v is not None]
        rows.append(
            ActivityResources(
                stats.name,
                len(pairs),
                _mean([e["cpu"] for _s, e in pairs]),
                _mean([e["proc_cpu"] for _s, e in pairs]),
                delta("mem_used"),
                delta("rss"),
                max(rss) if rss else None,
                _mean([e["gpu_util"] for _s, e in pairs]),
            )
        )
    return Resources(len(with_tel), len(tasks), rows, series)


def of_workflow(wf: WorkflowRun) -> Resources:
    """``resources`` of a workflow's tasks, computed once (the card and the PDF's chart)."""
    res = wf.computed.get("resources")
    if res is None:
        res = wf.computed["resources"] = resources(wf.tasks)
    return res
