"""Writes through ``DBAPI``: records inserted or merged, and workflows or campaigns deleted."""

from __future__ import annotations

from typing import Any

from provwh.query.backends import Backend
from provwh.query.frag import Frag, sql, stored


def record_of(obj: Any, kind: str) -> dict[str, Any]:
    if hasattr(obj, "to_dict"):
        rec = obj.to_dict()
    elif isinstance(obj, dict):
        rec = dict(obj)
    else:
        raise ValueError(f"expected a {kind} object or dict, got {type(obj).__name__}")
    rec = {k: v for k, v in rec.items() if v is not None}
    rec["type"] = kind
    return rec


def write_records(backend: Backend, records: list[dict[str, Any]]) -> None:
    """Records through the warehouse's one way in (``warehouse.ingest``), one transaction."""
    from provwh.warehouse.ingest import Ingest, in_transaction  # SQLAlchemy: on first write

    backend._read_only()
    Ingest(in_transaction(backend.write)).records(records, "provwh.query.DBAPI")


def delete_workflow(backend: Backend, workflow_id: str) -> dict[str, int]:
    """Delete a workflow, its tasks (values, telemetry, tags, edges) and its objects."""
    if not isinstance(workflow_id, str) or not workflow_id:
        raise ValueError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
    wf = sql('"workflow_id" = CAST({} AS TEXT)', stored(workflow_id))
    return _delete(backend, wf, wf, wf)


def delete_campaign(backend: Backend, campaign_id: str) -> dict[str, int]:
    """Delete a campaign's workflows, their tasks (and the campaign's) and their objects."""
    if not isinstance(campaign_id, str) or not campaign_id:
        raise ValueError(f"campaign_id must be a non-empty string, got {campaign_id!r}")
    in_campaign = sql(
        '"workflow_id" IN (SELECT w_.workflow_id FROM workflows w_'
        " WHERE w_.campaign_id = CAST({} AS TEXT))",
        stored(campaign_id),
    )
    camp = sql('"campaign_id" = CAST({} AS TEXT)', stored(campaign_id))
    tasks = sql("({} OR {})", camp, in_campaign)
    return _delete(backend, tasks, in_campaign, camp)


def _delete(backend: Backend, tasks: Frag, objects: Frag, workflows: Frag) -> dict[str, int]:
    b = backend
    b._read_only()
    ids = sql("SELECT task_id FROM tasks WHERE {}", tasks)
    with b.write() as tx:
        tx.lock()
        n_objects = b.fetch(
            tx, sql("SELECT count(DISTINCT object_id) FROM data_objects WHERE {}", objects)
        )[1][0][0]
        from provwh.warehouse.schema import TASK_CHILD_TABLES  # SQLAlchemy: on first delete

        for table in (*TASK_CHILD_TABLES, "lineage_pending"):
            b.execute(tx, sql(f"DELETE FROM {table} WHERE task_id IN ({{}})", ids))
        b.execute(
            tx,
            sql(
                "DELETE FROM task_edges WHERE src_task_id IN ({}) OR dst_task_id IN ({})",
                ids,
                ids,
            ),
        )
        b.execute(tx, sql("DELETE FROM data_objects WHERE {}", objects))
        n_tasks = b.execute(tx, sql("DELETE FROM tasks WHERE {}", tasks))
        n_workflows = b.execute(tx, sql("DELETE FROM workflows WHERE {}", workflows))
    return {"workflows": n_workflows, "tasks": n_tasks, "objects": int(n_objects)}


def delete_objects_where(backend: Backend, key_name: str, keys: Any) -> int:
    """Delete, with all their versions, the objects whose latest version has ``key_name`` in
    ``keys`` (one value or a list); returns how many objects."""
    from provwh.query.filters import FilterCompiler
    from provwh.query.find import latest_only
    from provwh.query.frag import all_of
    from provwh.query.paths import collection

    if not isinstance(key_name, str) or not key_name:
        raise ValueError(f"key_name must be a field name, got {key_name!r}")
    if not isinstance(keys, list):
        keys = [keys]
    coll = collection("objects")
    where = all_of([FilterCompiler(coll, backend.dialect).where({key_name: {"$in": keys}}),
                    latest_only(coll)])  # fmt: skip
    ids = sql("SELECT t.object_id FROM data_objects t WHERE {}", where)
    backend._read_only()
    with backend.write() as tx:
        tx.lock()
        n = backend.fetch(tx, sql("SELECT count(*) FROM ({}) AS x_", ids))[1][0][0]
        backend.execute(tx, sql("DELETE FROM data_objects WHERE object_id IN ({})", ids))
    return int(n)
