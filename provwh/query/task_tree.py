"""A workflow's tasks as trees of ``parent_task_id``: ``DBAPI.get_tasks_recursive`` and
``DBAPI.dump_tasks_to_file_recursive``.

The roots are the workflow's tasks without a parent; below each, its descendants (whatever
their workflow) down to ``max_depth``, read one level per query. The order is Flowcept's: a
root, all its children, then the children of its first child, and so on (each parent's
children in the default task order). Each task gets ``depth`` (0 for a root) and
``ancestor_ids`` (``[{activity_id: task_id}, ...]`` from the root down to its parent).

``mapping`` characterizes descendants as Flowcept does: ``{"activity_id": {activity: rules},
"subtype": {subtype: rules}}``, rules being a dict whose string keys and values that name
``task``, ``ancestors``, ``parent``, ``grandparent`` or ``primogenitor`` are Python expressions
evaluated with those names bound (``parent`` is the parent record, ``primogenitor`` the root,
``ancestors`` maps a task id to its ancestors' records, root first). A rule ``"extend"``
merges a dict (or a list of dicts); a rule ``"query"`` (``{"filter", "collection",
"projection"}``, filter values evaluated) merges the one record found (its ``used``,
``generated`` and ``custom_metadata`` flattened) or adds ``query_result`` when several are.
The result goes to ``custom_characterization``. The expressions are the caller's own code,
run as such (as in Flowcept).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from provwh.query.backends import Backend
from provwh.query.find import find
from provwh.query.paths import collection

log = logging.getLogger("provwh.query")

_NAMES = ("task", "ancestors", "parent", "grandparent", "primogenitor")


def get_tasks_recursive(
    backend: Backend, workflow_id: str, max_depth: int = 999, mapping: dict | None = None
) -> list[dict[str, Any]]:
    if isinstance(max_depth, bool) or not isinstance(max_depth, int):
        raise ValueError(f"max_depth must be an integer, got {max_depth!r}")
    tasks = collection("tasks")
    roots = find(
        backend, tasks, {"workflow_id": workflow_id, "parent_task_id": None}, None, 0, None
    )
    children: dict[str, list[dict[str, Any]]] = {}
    seen = {r["task_id"] for r in roots}
    level = list(seen)
    for _ in range(max(max_depth, 0)):
        if not level:
            break
        found = find(backend, tasks, {"parent_task_id": {"$in": level}}, None, 0, None)
        level = []
        for task in found:
            if task["task_id"] in seen:  # a parent cycle
                continue
            seen.add(task["task_id"])
            children.setdefault(task["parent_task_id"], []).append(task)
            level.append(task["task_id"])
    result: list[dict[str, Any]] = []
    for root in roots:
        _finished(root)
        root["ancestor_ids"], root["depth"] = [], 0
        ancestors: dict[str, list[dict[str, Any]]] = {root["task_id"]: []}
        result.append(root)
        queue: list[dict[str, Any]] = []
        current = root
        while True:
            kids = children.get(current["task_id"], []) if current["depth"] < max_depth else []
            for task in kids:
                _finished(task)
                ancestors[task["task_id"]] = ancestors[current["task_id"]] + [current]
                task["ancestor_ids"] = current["ancestor_ids"] + [
                    {current.get("activity_id"): current["task_id"]}
                ]
                task["depth"] = current["depth"] + 1
                if mapping is not None:
                    _characterize(backend, task, mapping, ancestors)
            result.extend(kids)
            queue = kids + queue
            if not queue:
                break
            current = queue.pop(0)
    return result


def dump_tasks_to_file_recursive(
    backend: Backend,
    workflow_id: str,
    output_file: str = "tasks.parquet",
    max_depth: int = 999,
    mapping: dict | None = None,
) -> None:
    """The tasks of ``get_tasks_recursive`` in a Parquet file, one column per field; dict
    fields (``used``, ``generated``, telemetry, ``custom_metadata``, ``ancestor_ids``,
    ``custom_characterization``...) as JSON text, as Flowcept writes them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from provwh.core.model import TASK_DICT_FIELDS
    from provwh.core.serialize import dumps

    records = get_tasks_recursive(backend, workflow_id, max_depth, mapping)
    as_json = {*TASK_DICT_FIELDS, "ancestor_ids", "custom_characterization"}
    names: dict[str, None] = {}
    for rec in records:
        names.update(dict.fromkeys(rec))
    columns = {}
    for name in names:
        values = [rec.get(name) for rec in records]
        if name in as_json:
            values = [None if v is None else dumps(v).decode() for v in values]
        columns[name] = values
    pq.write_table(pa.table(columns), output_file)


def _finished(task: dict[str, Any]) -> None:
    """Flowcept's old ``finished`` flag wins over the status."""
    if "finished" in task and task.get("status") != "FINISHED":
        task["status"] = "FINISHED"


def _characterize(
    backend: Backend, task: dict[str, Any], mapping: dict, ancestors: dict[str, list]
) -> None:
    line = ancestors[task["task_id"]]
    names = {
        "task": task,
        "ancestors": ancestors,
        "parent": line[-1] if line else None,
        "grandparent": line[-2] if len(line) > 1 else None,
        "primogenitor": line[0] if line else None,
    }

    def value(x: Any) -> Any:
        if isinstance(x, str) and any(n in x for n in _NAMES):
            return eval(x, {"__builtins__": __builtins__}, dict(names))  # noqa: S307
        return x

    out: dict[str, Any] = {}
    matched = False
    for kind in ("activity_id", "subtype"):
        rules_of = mapping.get(kind) or {}
        key = task.get(kind)
        if key is None or key not in rules_of:
            continue
        matched = True
        for k, v in (rules_of[key] or {}).items():
            k, v = value(k), value(v)
            if k == "extend":
                for part in v if isinstance(v, list) else [v]:
                    out.update(part)
            elif k == "query":
                _query_rule(backend, v, value, out)
            else:
                out[k] = v
    if matched:
        task["custom_characterization"] = out


def _query_rule(backend: Backend, rule: dict, value: Any, out: dict[str, Any]) -> None:
    flt = {k: value(v) for k, v in rule["filter"].items()}
    try:
        docs = find(
            backend,
            collection(rule.get("collection") or "tasks"),
            flt,
            rule.get("projection"),
            0,
            None,
        )
    except Exception as exc:  # as Flowcept: a failing lookup leaves the rest of the rules
        log.warning("provwh: mapping query %s failed: %s", json.dumps(flt, default=str), exc)
        return
    if len(docs) == 1:
        doc = docs[0]
        for field in ("used", "generated", "custom_metadata"):
            if isinstance(doc.get(field), dict):
                out.update(doc.pop(field))
        out.update(doc)
    elif len(docs) > 1:
        out["query_result"] = docs
