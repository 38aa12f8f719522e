"""Walking lineage: upstream / downstream of tasks, and lineage graphs, over ``task_edges``.

Edges are derived when loading (explicit dependencies, parent tasks, data flow: see
``sql/data_edges.sql``), so a walk is a recursive query over one indexed table, portable SQL
run unchanged by both engines:

- with a depth bound, ``WITH RECURSIVE`` over (task, depth) pairs joined by ``UNION``, which
  keeps one row per pair: diamonds do not multiply paths, a cycle stops at the bound, and each
  task's depth is its shortest distance (``min(depth)``);
- without a bound, ``UNION`` over tasks alone reaches every connected task exactly once (a
  cycle is just a task seen again), and the edges it reached give the shortest distances in
  Python (breadth-first).

Both give the same answer; results are sorted, so both engines return identical lists.

Task ids are walked as stored (``warehouse.escape``: escaped, a long one as its digest key) and
given back as captured: a task's own id from its row's ``extra``; that of a task never loaded,
which only edges name, from the records naming it (``_named_ids``).
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from provwh.query.backends import Backend
from provwh.query.filters import FilterCompiler
from provwh.query.frag import Frag, join, sql, stored
from provwh.query.paths import collection
from provwh.query.results import loads_json
from provwh.warehouse.escape import escape_text, id_key, is_digest_key, unescape_text

KIND_NAMES = {"dependency": "explicit", "parent": "parent", "data": "dataflow"}
_STORED = {
    "explicit": "dependency",
    "dependency": "dependency",
    "parent": "parent",
    "dataflow": "data",
    "data": "data",
}
_NODE_FIELDS = ("activity_id", "workflow_id", "status", "started_at", "ended_at")


def stored_kinds(kinds: Any) -> list[str]:
    """Edge kinds as stored, from the public names (explicit, parent, dataflow)."""
    if kinds is None:
        return sorted(set(_STORED.values()))
    if isinstance(kinds, str):
        kinds = [kinds]
    out = set()
    for k in kinds:
        if k not in _STORED:
            raise ValueError(f"unknown edge kind {k!r}: use explicit, parent or dataflow")
        out.add(_STORED[k])
    if not out:
        raise ValueError("kinds must name at least one edge kind")
    return sorted(out)


def _depth(max_depth: Any) -> int | None:
    if max_depth is None:
        return None
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 0:
        raise ValueError(f"max_depth must be a non-negative integer or None, got {max_depth!r}")
    return max_depth


def _kind_in(alias: str, kinds: list[str]) -> Frag:
    return sql(
        "{}.kind IN ({})", Frag(alias), join(", ", [sql("CAST({} AS TEXT)", k) for k in kinds])
    )


def _ends(direction: str) -> tuple[str, str]:
    """(column reached, column walked from) for ``up`` (to producers) or ``down``."""
    if direction == "up":
        return "src_task_id", "dst_task_id"
    if direction == "down":
        return "dst_task_id", "src_task_id"
    raise ValueError(direction)


def _info(backend: Backend) -> Frag:
    """The task's id as captured (escaped; NULL for a task never loaded), then the node fields
    of ``tasks t``: ids as captured, times as epoch microseconds (exact, and cheap to read)."""
    d = backend.dialect
    comp = FilterCompiler(collection("tasks"), d)
    return join(
        ", ",
        [comp.text_col("task_id")]
        + [
            d.epoch_us(Frag(f't."{c}"')) if c in ("started_at", "ended_at") else comp.text_col(c)
            for c in _NODE_FIELDS
        ],
    )


def walk(
    backend: Backend,
    seeds: Frag,
    roots: Iterable[str],
    direction: str,
    max_depth: Any,
    kinds: Any,
) -> dict[str, dict[str, Any]]:
    """Task id (as stored) -> its node fields and ``depth``, the shortest distance from the
    seed tasks.

    ``seeds`` selects the seed task ids in SQL; ``roots`` lists them (as stored).
    """
    depth = _depth(max_depth)
    edge_kinds = stored_kinds(kinds)
    reach, start = _ends(direction)
    if depth is not None:
        q = sql(
            "WITH RECURSIVE walk_(task_id, depth) AS ("
            " SELECT CAST(s_.task_id AS TEXT), 0 FROM ({}) AS s_(task_id)"
            " UNION"
            " SELECT e." + reach + ", w_.depth + 1 FROM walk_ w_"
            " JOIN task_edges e ON e." + start + " = w_.task_id"
            " WHERE w_.depth < CAST({} AS INTEGER) AND {})"
            " SELECT task_id, min(depth) FROM walk_ GROUP BY task_id",
            seeds,
            depth,
            _kind_in("e", edge_kinds),
        )
        return _placed(backend, dict(backend.query(q)[1]))
    # every reachable task once (a cycle is a task seen again) with the tasks it leads to;
    # reach_ is read once (DuckDB 1.5 can hang on a recursive CTE read twice)
    q = sql(
        "WITH RECURSIVE reach_(task_id) AS ("
        " SELECT CAST(s_.task_id AS TEXT) FROM ({}) AS s_(task_id)"
        " UNION"
        " SELECT e." + reach + " FROM reach_ r_ JOIN task_edges e ON e." + start + " = r_.task_id"
        " WHERE {})"
        " SELECT r_.task_id, (SELECT array_agg(e." + reach + ") FROM task_edges e"
        " WHERE e." + start + " = r_.task_id AND {}) FROM reach_ r_",
        seeds,
        _kind_in("e", edge_kinds),
        _kind_in("e", edge_kinds),
    )
    nexts = {tid: following or [] for tid, following in backend.query(q)[1]}
    return _placed(backend, _bfs([r for r in roots if r in nexts], nexts))


def _placed(backend: Backend, depths: dict[str, int]) -> dict[str, dict[str, Any]]:
    """The node of each task reached, with its depth.

    The tasks' fields are read by id after the walk, not joined to it: DuckDB plans the join
    as a scan of every task (70 ms at 1,000,000 tasks, for 4 tasks reached), where the ids
    look up its primary key index.
    """
    nodes = node_info(backend, depths)
    for tid, node in nodes.items():
        node["depth"] = depths[tid]
    return nodes


def _nodes(backend: Backend, found: dict[str, tuple[tuple, int | None]]) -> dict[str, dict]:
    """Task id (as stored) -> its node, from its ``_info`` values and depth."""
    named = _named_ids(backend, [tid for tid, (values, _) in found.items() if values[0] is None])
    return {
        tid: _node(values[0] or named.get(tid, tid), values[1:], depth)
        for tid, (values, depth) in found.items()
    }


def _named_ids(backend: Backend, task_ids: list[str]) -> dict[str, str]:
    """The ids (escaped) that the digest keys among ``task_ids``, of tasks never loaded,
    stand for: found in the records of the tasks naming them (``parent_task_id``, kept in
    ``extra``, ``dependencies``, ``dependents``). Only long ids cost this query."""
    keys = sorted(t for t in task_ids if is_digest_key(t))
    if not keys:
        return {}
    q = sql(
        "SELECT t.extra, t.dependencies, t.dependents FROM tasks t WHERE t.task_id IN"
        " (SELECT e.dst_task_id FROM task_edges e WHERE {}"
        " UNION SELECT e.src_task_id FROM task_edges e WHERE {})",
        in_list(backend, "e.src_task_id", keys),
        in_list(backend, "e.dst_task_id", keys),
    )
    wanted, out = set(keys), {}
    for row in backend.query(q)[1]:
        docs = [loads_json(v) if isinstance(v, (str, bytes)) else v for v in row]
        extra = docs[0] if isinstance(docs[0], dict) else {}
        for value in (extra.get("parent_task_id"), *docs[1:]):
            for item in value if isinstance(value, list) else [value]:
                t = type(item)
                if t is not str and t is not int and t is not float:
                    continue
                text = escape_text(item if t is str else str(item) if t is int else repr(item))
                key = id_key(text)
                if key in wanted:
                    out[key] = text
    return out


def _node(task_id: str, values: tuple, depth: int | None) -> dict[str, Any]:
    activity, workflow, status, started, ended = values
    rec: dict[str, Any] = {
        "task_id": _text(task_id),
        "activity_id": _text(activity),
        "workflow_id": _text(workflow),
        "status": _text(status),
        "started_at": None if started is None else started / 1_000_000,
        "ended_at": None if ended is None else ended / 1_000_000,
    }
    if depth is not None:
        rec["depth"] = depth
    return rec


def _text(value: str | None) -> str | None:
    """A text column's value as given (ids are stored escaped, ``warehouse.escape``)."""
    return None if value is None else unescape_text(value)


def _bfs(roots: Iterable[str], nexts: dict[str, list[str]]) -> dict[str, int]:
    """Shortest distances from ``roots``, level by level."""
    dist = dict.fromkeys(roots, 0)
    level, depth = list(dist), 0
    while level:
        depth += 1
        found = []
        for node in level:
            for nxt in nexts.get(node, ()):
                if nxt not in dist:
                    dist[nxt] = depth
                    found.append(nxt)
        level = found
    return dist


def one_task(task_id: Any) -> Frag:
    if not isinstance(task_id, str) or not task_id:
        raise ValueError(f"task_id must be a non-empty string, got {task_id!r}")
    return sql("SELECT CAST({} AS TEXT)", stored(task_id))


def workflow_tasks(workflow_id: Any) -> Frag:
    if not isinstance(workflow_id, str) or not workflow_id:
        raise ValueError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
    return sql(
        "SELECT task_id FROM tasks WHERE workflow_id = CAST({} AS TEXT)", stored(workflow_id)
    )


def in_list(backend: Backend, expr: str, values: list[str]) -> Frag:
    """``expr`` is one of ``values`` (one bound array, whatever its length)."""
    if backend.dialect.name == "postgresql":
        return sql(expr + " = ANY(CAST({} AS TEXT[]))", list(values))
    return sql(expr + " IN (SELECT unnest(CAST({} AS VARCHAR[])))", list(values))


def node_info(backend: Backend, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """A few fields of each task (tasks named by edges but never loaded get ``None``s)."""
    ids = sorted(set(ids))
    found: dict[str, tuple[tuple, int | None]] = {
        tid: ((None,) * (len(_NODE_FIELDS) + 1), None) for tid in ids
    }
    if ids:
        q = sql(
            "SELECT t.task_id, {} FROM tasks t WHERE {}",
            _info(backend),
            in_list(backend, "t.task_id", ids),
        )
        for row in backend.query(q)[1]:
            found[row[0]] = (row[1:], None)
    return _nodes(backend, found)


def related(
    backend: Backend, task_id: str, direction: str, max_depth: Any, kinds: Any
) -> list[dict[str, Any]]:
    """The tasks upstream (``up``) or downstream (``down``) of a task, nearest first."""
    nodes = walk(backend, one_task(task_id), [stored(task_id)], direction, max_depth, kinds)
    nodes.pop(stored(task_id), None)
    return sorted(nodes.values(), key=itemgetter("depth", "task_id"))


def graph(
    backend: Backend,
    task_id: str | None,
    workflow_id: str | None,
    depth: Any,
    kinds: Any,
) -> dict[str, list[dict[str, Any]]]:
    """``{"nodes": [...], "edges": [{"src", "dst", "kind"}]}`` around a task or a workflow."""
    if (task_id is None) == (workflow_id is None):
        raise ValueError("lineage_graph needs exactly one of task_id or workflow_id")
    edge_kinds = stored_kinds(kinds)
    if task_id is not None:
        seeds, nodes = one_task(task_id), {stored(task_id)}
    else:
        seeds = workflow_tasks(workflow_id)
        nodes = {r[0] for r in backend.query(seeds)[1]}
        if depth is None:
            depth = 0
    if depth != 0:
        roots = sorted(nodes)
        for direction in ("up", "down"):
            nodes |= set(walk(backend, seeds, roots, direction, depth, edge_kinds))
    info = node_info(backend, nodes)
    edges: list[dict[str, str]] = []
    if nodes:
        ids = sorted(nodes)
        q = sql(
            "SELECT e.src_task_id, e.dst_task_id, e.kind FROM task_edges e WHERE {} AND {} AND {}",
            in_list(backend, "e.src_task_id", ids),
            in_list(backend, "e.dst_task_id", ids),
            _kind_in("e", edge_kinds),
        )
        edges = [
            {"src": info[s]["task_id"], "dst": info[d]["task_id"], "kind": KIND_NAMES.get(k, k)}
            for s, d, k in backend.query(q)[1]
        ]
    edges.sort(key=lambda e: (e["src"], e["dst"], e["kind"]))
    return {"nodes": [info[t] for t in sorted(nodes)], "edges": edges}
