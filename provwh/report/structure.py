"""The lineage structure of a run: parents, dependencies, loops, layers, longest chain."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
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
