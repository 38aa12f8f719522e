"""Numbers computed from provenance records: grouping, timing, values, telemetry, lineage.

Everything here is plain Python over record dicts (no pandas), tolerant of records written by
Flowcept (no ``type``, missing times or statuses), and deterministic: the same records give the
same numbers in the same order, so the card can be compared line by line.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from provwh.core.model import merge_records

_TIME_FIELDS = ("submitted_at", "started_at", "ended_at", "utc_timestamp")
STATUS_ORDER = ("FINISHED", "ERROR", "RUNNING", "SUBMITTED", "WAITING", "UNKNOWN")
NO_ACTIVITY = "(no activity_id)"


# -- records -------------------------------------------------------------------------------------


def record_kind(rec: dict[str, Any]) -> str:
    """``task``, ``workflow`` or another type; Flowcept files may omit ``type``."""
    kind = rec.get("type")
    if isinstance(kind, str) and kind:
        return kind
    if "task_id" in rec or "activity_id" in rec:
        return "task"
    if "workflow_id" in rec:
        return "workflow"
    return "unknown"


def to_epoch(value: Any) -> float | None:
    """Float epoch seconds from a number, an ISO string or a datetime (else None)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _normalized(rec: dict[str, Any]) -> dict[str, Any]:
    out = dict(rec)
    for key in _TIME_FIELDS:
        if key in out:
            out[key] = to_epoch(out[key])
    status = out.get("status")
    out["status"] = str(status).upper() if status else "UNKNOWN"
    return out


def duration(task: dict[str, Any]) -> float | None:
    start, end = task.get("started_at"), task.get("ended_at")
    if start is None or end is None:
        return None
    return max(0.0, end - start)


def activity(task: dict[str, Any]) -> str:
    name = task.get("activity_id")
    return str(name) if name not in (None, "") else NO_ACTIVITY


@dataclass
class WorkflowRun:
    """One workflow: its (merged) record, empty when only tasks name it, and its tasks."""

    workflow_id: str | None
    record: dict[str, Any]
    tasks: list[dict[str, Any]]

    @property
    def name(self) -> str | None:
        return self.record.get("name") or next(
            (t["workflow_name"] for t in self.tasks if t.get("workflow_name")), None
        )

    @property
    def campaign_id(self) -> str | None:
        return self.record.get("campaign_id") or next(
            (t["campaign_id"] for t in self.tasks if t.get("campaign_id")), None
        )

    @property
    def started_at(self) -> float | None:
        start = self.record.get("started_at")
        if start is None:
            starts = [t["started_at"] for t in self.tasks if t.get("started_at") is not None]
            start = min(starts) if starts else None
        return start

    @property
    def ended_at(self) -> float | None:
        end = self.record.get("ended_at")
        if end is None:
            ends = [t["ended_at"] for t in self.tasks if t.get("ended_at") is not None]
            end = max(ends) if ends else None
        return end

    @property
    def duration(self) -> float | None:
        start, end = self.started_at, self.ended_at
        return None if start is None or end is None else max(0.0, end - start)

    @property
    def status(self) -> str:
        return self.record.get("status") or "UNKNOWN"

    @property
    def label(self) -> str:
        return self.name or (self.workflow_id or "(no workflow_id)")


@dataclass
class Dataset:
    """The input grouped by workflow (ordered by start time, then id)."""

    workflows: list[WorkflowRun]
    record_count: int
    other_records: dict[str, int] = field(default_factory=dict)

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return [t for wf in self.workflows for t in wf.tasks]

    @property
    def campaign_ids(self) -> list[str]:
        return sorted({str(wf.campaign_id) for wf in self.workflows if wf.campaign_id})


def _task_order(task: dict[str, Any]) -> tuple:
    """Start time, then id: the same records in any order give the same order."""
    start = task.get("started_at")
    tid = task.get("task_id")
    return (
        start is None,
        start or 0.0,
        tid is None,
        str(tid) if tid is not None else "",
        task["_order"],
    )


def load(records: list[dict[str, Any]]) -> Dataset:
    """Group records by workflow; parts of one task or workflow (same id) are merged."""
    workflows: dict[Any, dict[str, Any]] = {}
    tasks: dict[Any, dict[str, Any]] = {}
    others: Counter[str] = Counter()
    for index, rec in enumerate(records):
        if not isinstance(rec, dict):
            others["not a dict"] += 1
            continue
        kind = record_kind(rec)
        if kind == "task":
            key = rec.get("task_id")
            key = ("id", str(key)) if key is not None else ("row", index)
            if key in tasks:
                merge_records(tasks[key], rec)
            else:
                tasks[key] = dict(rec)
        elif kind == "workflow":
            key = rec.get("workflow_id")
            if key in workflows:
                merge_records(workflows[key], rec)
            else:
                workflows[key] = dict(rec)
        else:
            others[kind] += 1

    grouped: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for order, task in enumerate(tasks.values()):
        task = _normalized(task)
        task["_order"] = order
        grouped[task.get("workflow_id")].append(task)
    runs = []
    for wf_id in list(workflows) + [k for k in grouped if k not in workflows]:
        wf_tasks = grouped.get(wf_id, [])
        wf_tasks.sort(key=_task_order)
        record = _normalized(workflows[wf_id]) if wf_id in workflows else {}
        runs.append(WorkflowRun(None if wf_id is None else str(wf_id), record, wf_tasks))
    runs.sort(key=lambda r: (r.started_at is None, r.started_at or 0.0, r.workflow_id or ""))
    return Dataset(runs, len(records), dict(sorted(others.items())))


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
        durations = [d for d in (duration(t) for t in group) if d is not None]
        stats.append(
            ActivityStats(
                name, len(group), status_counts(group), durations, min(starts) if starts else None
            )
        )
    stats.sort(key=lambda s: (s.first_start is None, s.first_start or 0.0, s.name))
    return stats


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


# -- telemetry -----------------------------------------------------------------------------------


def dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


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


# -- lineage -------------------------------------------------------------------------------------


def task_key(task: dict[str, Any]) -> str:
    tid = task.get("task_id")
    return str(tid) if tid is not None else f"#row{task['_order']}"


def _dependencies(task: dict[str, Any]) -> list[str]:
    deps = task.get("dependencies")
    if deps is None:
        return []
    if isinstance(deps, str | int):
        return [str(deps)]
    if isinstance(deps, list | tuple | set):
        return [str(d) for d in deps if d is not None]
    return []


@dataclass
class LoopSummary:
    name: str
    runs: int
    iterations: list[int]  # per run
    iteration_durations: list[float]


@dataclass
class Lineage:
    nodes: list[str]  # task keys, in task order
    parent_edges: list[tuple[str, str]]  # (parent, child)
    dependency_edges: list[tuple[str, str]]  # (dependency, task)
    with_parent: int
    with_dependencies: int
    roots: list[str]
    leaves: list[str]
    parent_depth: int  # levels of the parent tree (1 = no nesting)
    layer: dict[str, int]  # longest path from a root over both kinds of edges
    dangling: int  # references to tasks that are not in the input
    children: dict[str, int]
    loops: list[LoopSummary]

    @property
    def edges(self) -> list[tuple[str, str]]:
        return self.parent_edges + self.dependency_edges

    @property
    def longest_chain(self) -> int:
        return max(self.layer.values()) + 1 if self.layer else 0


def layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layer of each node (Kahn's order; nodes on a cycle go after their preds)."""
    succ: dict[str, list[str]] = defaultdict(list)
    indeg: dict[str, int] = dict.fromkeys(nodes, 0)
    for a, b in edges:
        succ[a].append(b)
        indeg[b] += 1
    layer = dict.fromkeys(nodes, 0)
    ready = [n for n in nodes if indeg[n] == 0]
    while ready:
        nxt = []
        for n in ready:
            for m in succ[n]:
                layer[m] = max(layer[m], layer[n] + 1)
                indeg[m] -= 1
                if indeg[m] == 0:
                    nxt.append(m)
        ready = nxt
    return layer  # a node on a cycle keeps the layer reached from its acyclic predecessors


def lineage(tasks: list[dict[str, Any]]) -> Lineage:
    """Parent/child and dependency structure of one workflow's tasks, and its loops."""
    keys = [task_key(t) for t in tasks]
    known = set(keys)
    parent_edges, dep_edges = [], []
    dangling = with_parent = with_deps = 0
    parent_of: dict[str, str] = {}
    for key, task in zip(keys, tasks, strict=True):
        parent = task.get("parent_task_id")
        if parent is not None:
            with_parent += 1
            parent = str(parent)
            if parent in known and parent != key:
                parent_edges.append((parent, key))
                parent_of[key] = parent
            else:
                dangling += 1
        deps = _dependencies(task)
        if deps:
            with_deps += 1
        for dep in deps:
            if dep in known and dep != key:
                dep_edges.append((dep, key))
            else:
                dangling += 1
    edges = parent_edges + dep_edges
    has_in = {b for _a, b in edges}
    has_out = {a for a, _b in edges}
    children = Counter(a for a, _b in parent_edges)

    depth: dict[str, int] = {}
    for key in keys:  # walk up the parent chain (a cycle stops at a node seen on the way)
        chain, node, seen = [], key, set()
        while node not in depth and node not in seen:
            seen.add(node)
            chain.append(node)
            node = parent_of.get(node)
            if node is None:
                break
        base = depth.get(node, 0) if node is not None else 0
        for i, n in enumerate(reversed(chain)):
            depth[n] = base + i + 1

    loops: dict[str, LoopSummary] = {}
    iterations_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, task in zip(keys, tasks, strict=True):
        if task.get("subtype") == "iteration":
            iterations_of[parent_of.get(key, "")].append(task)
    for key, task in zip(keys, tasks, strict=True):
        if task.get("subtype") == "whole_loop":
            name = activity(task)
            loop = loops.setdefault(name, LoopSummary(name, 0, [], []))
            its = iterations_of.pop(key, [])
            loop.runs += 1
            loop.iterations.append(len(its))
            loop.iteration_durations += [d for d in map(duration, its) if d is not None]
    for _parent, its in sorted(iterations_of.items()):  # iterations without a whole_loop
        runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for task in its:
            runs[activity(task).removesuffix("_iteration")].append(task)
        for name, group in runs.items():
            loop = loops.setdefault(name, LoopSummary(name, 0, [], []))
            loop.runs += 1
            loop.iterations.append(len(group))
            loop.iteration_durations += [d for d in map(duration, group) if d is not None]
    return Lineage(
        nodes=keys,
        parent_edges=parent_edges,
        dependency_edges=dep_edges,
        with_parent=with_parent,
        with_dependencies=with_deps,
        roots=[k for k in keys if k not in has_in],
        leaves=[k for k in keys if k not in has_out],
        parent_depth=max(depth.values()) if depth else 0,
        layer=layers(keys, edges),
        dangling=dangling,
        children=dict(children),
        loops=sorted(loops.values(), key=lambda lp: lp.name),
    )


# -- artifacts -----------------------------------------------------------------------------------

_FILE_EXTENSIONS = frozenset(
    "csv tsv json jsonl ndjson parquet arrow feather avro orc txt log out err md html xml yaml "
    "yml toml ini cfg png jpg jpeg gif bmp svg tif tiff pdf h5 hdf5 nc zarr npy npz pt pth ckpt "
    "pkl pickle joblib onnx safetensors pb tflite bin dat raw fits vtk vtu mp4 avi wav mp3 "
    "tar gz tgz zip bz2 xz zst sqlite db duckdb py ipynb sh".split()
)
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://\S+$")
_ABS = re.compile(r"^(/|\./|\.\./|~/|[A-Za-z]:[\\/])")


def looks_like_path(value: Any) -> bool:
    """A string that names a file or URL: ``/x``, ``./x``, ``C:\\x``, ``s3://x``, ``a/b.csv``."""
    if not isinstance(value, str) or not (1 < len(value) <= 1024) or "\n" in value:
        return False
    s = value.strip()
    if _URL.match(s):
        return True
    if s.count(" ") > 2:
        return False
    if _ABS.match(s) and len(s) > 1 and any(c.isalnum() for c in s):
        return True
    base = re.split(r"[\\/]", s)[-1]
    stem, dot, ext = base.rpartition(".")
    return bool(dot and stem and " " not in base and ext.lower() in _FILE_EXTENSIONS)


@dataclass
class PathKey:
    """A used/generated key of one activity whose values look like file paths or URLs."""

    activity: str
    direction: str
    key: str
    values: list[str]  # distinct, sorted
    tasks: int


@dataclass
class Artifacts:
    data: list[tuple[str, str, int]]  # (activity, task key, size in bytes)
    paths: list[PathKey]


def data_size(data: Any) -> int:
    if isinstance(data, bytes | bytearray | str):
        return len(data)
    b64 = dig(data, "$binary", "base64")
    if isinstance(b64, str):
        return len(b64) * 3 // 4 - b64.count("=")
    return len(str(data))


def artifacts(tasks: list[dict[str, Any]]) -> Artifacts:
    """Tasks that carry ``data``, and keys whose values look like file paths or URLs."""
    data = [
        (activity(t), task_key(t), data_size(t["data"])) for t in tasks if t.get("data") is not None
    ]
    values: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    counts: Counter[tuple[str, str, str]] = Counter()
    for task in tasks:
        for direction in ("used", "generated"):
            fields = task.get(direction)
            if not isinstance(fields, dict):
                continue
            for key, value in fields.items():
                items = value if isinstance(value, list) else [value]
                found = [v for v in items[:100] if looks_like_path(v)]
                if found:
                    k = (activity(task), direction, str(key))
                    values[k].update(found)
                    counts[k] += 1
    order = {s.name: i for i, s in enumerate(activity_stats(tasks))}
    direction_order = {"used": 0, "generated": 1}
    keys = sorted(values, key=lambda k: (order[k[0]], direction_order[k[1]], k[2]))
    paths = [PathKey(a, d, k, sorted(values[(a, d, k)]), counts[(a, d, k)]) for a, d, k in keys]
    return Artifacts(data, paths)
