"""A workflow's data flow: its tasks and the data that links them, as a graph.

Data nodes are the values one task generated and another used (the ``v_data_lineage`` view:
the data edges the loader derives, with the value and the keys that link them), one node per
producer and generated key; edges go producer → data (``generated``) → consumer (``used``,
with the key it was used under). Tasks of other workflows that produce or use the
workflow's data are nodes too (their ``workflow_id`` says so).
"""

from __future__ import annotations

from typing import Any

from provwh.query.backends import Backend
from provwh.query.find import _decode_value
from provwh.query.frag import Frag, sql, stored
from provwh.query.lineage import node_info, workflow_tasks
from provwh.warehouse.escape import unescape_text


def dataflow(backend: Backend, workflow_id: str) -> dict[str, Any]:
    """``{"workflow_id", "nodes": [...], "edges": [...]}``: task nodes
    ``{"id": "task:<task_id>", "kind": "task", task_id, activity_id, workflow_id, status,
    started_at, ended_at}``, data nodes ``{"id": "data:<task_id>/<key>", "kind": "data",
    "task_id" (its producer), "key", "value"}``, edges ``{"src", "dst", "kind": "generated" |
    "used", "key"}``; sorted by id, so both engines answer the same."""
    d = backend.dialect
    wf = stored(workflow_id)
    q = sql(
        "SELECT l.producer_task_id, l.generated_key, l.consumer_task_id, l.used_key,"
        " l.value_type, l.value_text, l.value_num, l.value_bool, {}"
        " FROM v_data_lineage l"
        " WHERE l.producer_workflow_id = CAST({} AS TEXT)"
        " OR l.consumer_workflow_id = CAST({} AS TEXT)",
        d.j_text(Frag("l.value_json")),
        wf,
        wf,
    )
    links = backend.query(q)[1]
    task_ids = {r[0] for r in backend.query(workflow_tasks(workflow_id))[1]}
    task_ids |= {r[0] for r in links} | {r[2] for r in links}
    info = node_info(backend, task_ids)
    nodes = {
        f"task:{n['task_id']}": {"id": f"task:{n['task_id']}", "kind": "task", **n}
        for n in info.values()
    }
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    for producer, gen_key, consumer, used_key, *value in links:
        src, dst = info[producer]["task_id"], info[consumer]["task_id"]
        key = unescape_text(gen_key)
        data_id = f"data:{src}/{key}"
        nodes.setdefault(
            data_id,
            {"id": data_id, "kind": "data", "task_id": src, "key": key,
             "value": _decode_value(tuple(value))},
        )  # fmt: skip
        edges[(f"task:{src}", data_id, "generated")] = {
            "src": f"task:{src}", "dst": data_id, "kind": "generated", "key": key
        }  # fmt: skip
        used = unescape_text(used_key)
        edges[(data_id, f"task:{dst}", used)] = {
            "src": data_id, "dst": f"task:{dst}", "kind": "used", "key": used
        }  # fmt: skip
    return {
        "workflow_id": workflow_id,
        "nodes": [nodes[k] for k in sorted(nodes)],
        "edges": [edges[k] for k in sorted(edges)],
    }
