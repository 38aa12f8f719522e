"""Per-workflow data kept as fields of the workflow record: Flowcept's domain data schema
snapshot (``workflow_domain_data_schema``) and the node positions its web UI saves per graph
(``node_positions``: ``{graph_type: {node_id: {"x", "y"}}}``).

Both are fields the ``workflows`` table has no column for, so they live in its ``extra`` JSON.
A field set here **replaces** the stored value (Flowcept's ``$set``), where
``insert_or_update_workflow`` would merge two dicts; the read, the change and the write are one
transaction. A workflow not stored yet gets a record holding only the field (as Flowcept
upserts); its own record merges into it when it arrives.
"""

from __future__ import annotations

from typing import Any

from provwh.query.backends import Backend

DOMAIN_DATA_SCHEMA = "workflow_domain_data_schema"
NODE_POSITIONS = "node_positions"


def set_fields(
    backend: Backend, workflow_id: str, fields: dict[str, Any], merge: bool = False
) -> None:
    """Set top-level ``fields`` of a workflow record, creating the record if needed.

    A value replaces the stored one; with ``merge``, a dict value replaces only its own keys
    of the stored dict (one level).
    """
    from provwh.warehouse import ids
    from provwh.warehouse.ingest import normalize_records
    from provwh.warehouse.normalize import build_rows, record_from_row

    _check_id(workflow_id)
    backend._read_only()
    norm = normalize_records(
        [{"type": "workflow", "workflow_id": workflow_id, **fields}], "provwh.query.DBAPI"
    )
    if norm.rejects:
        raise ValueError(f"cannot store the workflow fields: {norm.rejects[0].reason}")
    ((key, new),) = norm.workflows.items()
    with backend.write() as tx:
        tx.lock()
        stored = tx.fetch("workflows", [key])
        if stored:
            rec = record_from_row(ids.WORKFLOW, stored[0])
            for k in fields:
                old = rec.get(k)
                both = merge and isinstance(old, dict) and isinstance(new[k], dict)
                rec[k] = {**old, **new[k]} if both else new[k]
        else:
            rec = new
        tx.replace("workflows", build_rows(ids.WORKFLOW, [rec]).workflows)


def get_field(backend: Backend, workflow_id: str, field: str) -> tuple[bool, Any]:
    """``(workflow stored, value of its field or None)``."""
    from provwh.query.find import find
    from provwh.query.paths import collection

    _check_id(workflow_id)
    found = find(backend, collection("workflows"), {"workflow_id": workflow_id}, [field], 1, None)
    return (bool(found), found[0].get(field) if found else None)


def save_node_positions(
    backend: Backend, workflow_id: str, graph_type: str, positions: dict
) -> bool:
    """Replace the positions of one graph of a workflow (the other graphs keep theirs)."""
    if not isinstance(graph_type, str) or not graph_type:
        raise ValueError(f"graph_type must be a non-empty string, got {graph_type!r}")
    if not isinstance(positions, dict):
        raise ValueError(f"positions must be a dict of node id -> coordinates, got {positions!r}")
    set_fields(backend, workflow_id, {NODE_POSITIONS: {graph_type: positions}}, merge=True)
    return True


def get_node_positions(backend: Backend, workflow_id: str, graph_type: str) -> dict:
    """The positions saved for one graph of a workflow, or ``{}``."""
    _, graphs = get_field(backend, workflow_id, NODE_POSITIONS)
    positions = graphs.get(graph_type) if isinstance(graphs, dict) else None
    return positions if isinstance(positions, dict) else {}


def _check_id(workflow_id: Any) -> None:
    if not isinstance(workflow_id, str) or not workflow_id:
        raise ValueError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
