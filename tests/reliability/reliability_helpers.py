"""Helpers for the fault tests: batch files, loading, a DBAPI on either engine."""

from __future__ import annotations

import os
from typing import Any

from provwh.transport.batches import write_batch

T0 = 1_700_000_000.0


def task(task_id: str, wf: str = "wf-r", **extra: Any) -> dict[str, Any]:
    rec = {
        "type": "task",
        "task_id": task_id,
        "workflow_id": wf,
        "activity_id": "step",
        "status": "FINISHED",
        "started_at": T0,
        "ended_at": T0 + 1,
    }
    rec.update(extra)
    return rec


def write_batches(folder: Any, batches: list[list[dict]]) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, records in enumerate(batches):
        path = os.path.join(str(folder), f"{i:04d}-batch.jsonl")
        write_batch(path, records, "jsonl", fsync=False)
        paths.append(path)
    return paths


def target(kind: str, where: str) -> Any:
    if kind == "duckdb":
        from provwh.warehouse.duck import DuckTarget

        return DuckTarget(where)
    from provwh.warehouse.pg import PgTarget

    return PgTarget(where)


def load(kind: str, where: str, paths: list[str]) -> Any:
    """Load batch files with the warehouse loader (lineage derived); returns its last result."""
    from provwh.warehouse.loader import Loader

    loader = Loader([target(kind, where)])
    try:
        result = None
        for path in paths:
            result = loader.load_file(path)
        loader.derive_lineage()
        return result
    finally:
        loader.close()


def open_db(kind: str, where: str) -> Any:
    from provwh.query.api import DBAPI

    return DBAPI.from_duckdb(where) if kind == "duckdb" else DBAPI.from_postgres(where)
