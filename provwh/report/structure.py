"""The lineage structure of a run: parents, dependencies, loops, layers, longest chain."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from provwh.report.records import activity, duration

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
    run_durations: list[float] = field(default_factory=list)  # first start to last end


def run_duration(iterations: list[dict[str, Any]]) -> float | None:
    """A loop run's duration from its iterations alone: first ``started_at`` to last
    ``ended_at`` (what a whole-loop record would have held)."""
    starts = [t["started_at"] for t in iterations if t.get("started_at") is not None]
    ends = [t["ended_at"] for t in iterations if t.get("ended_at") is not None]
    if not starts or not ends:
        return None
    return max(0.0, max(ends) - min(starts))


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


def is_iteration(task: dict[str, Any]) -> bool:
    """A loop iteration: provwh marks them ``subtype="iteration"``; Flowcept 1.0.3 gives them a
    ``group_id`` and an activity named ``<loop>_iteration``."""
    if task.get("subtype") == "iteration":
        return True
    return task.get("group_id") is not None and activity(task).endswith("_iteration")


def loop_runs(
    tasks: list[dict[str, Any]], keys: list[str], parent_of: dict[str, str]
) -> dict[str, list[list[dict[str, Any]]]]:
    """Each loop's runs (by loop name), each run its iterations, from the iterations alone.

    A run is the iterations sharing a ``group_id`` (the loop's id); iterations without one
    (older records) are grouped by parent task and loop name. A ``whole_loop`` task, where
    there is one (``FlowceptLoop(whole_loop=True)``, or older provwh), names its run even
    when the run had no iterations.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    names: dict[str, str] = {}
    for key, task in zip(keys, tasks, strict=True):
        if task.get("subtype") == "whole_loop":
            groups[key], names[key] = [], activity(task)
    for key, task in zip(keys, tasks, strict=True):
        if task.get("subtype") == "whole_loop" or not is_iteration(task):
            continue
        name = activity(task).removesuffix("_iteration")
        group = task.get("group_id")
        parent = parent_of.get(key, "")
        if group is not None:
            run = str(group)
        elif parent in names:  # an older iteration, child of its whole_loop task
            run = parent
        else:  # no loop id: one run per parent task and loop name
            run = f"{parent}\x00{name}"
        groups.setdefault(run, []).append(task)
        names.setdefault(run, name)
    out: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for run in sorted(groups):
        out[names[run]].append(groups[run])
    return out


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
    for name, runs in loop_runs(tasks, keys, parent_of).items():
        loop = loops[name] = LoopSummary(name, 0, [], [])
        for its in runs:
            loop.runs += 1
            loop.iterations.append(len(its))
            loop.iteration_durations += [d for d in map(duration, its) if d is not None]
            run = run_duration(its)
            if run is not None:
                loop.run_durations.append(run)
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
