"""Helpers for the warehouse tests: a throwaway PostgreSQL cluster, records, queries."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson
import psycopg

# tests/ holds pg_support; subprocesses of the kill tests import this module without pytest
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pg_support import PgCluster, can_connect, find_pg_bin, free_port, with_db  # noqa: E402, F401

from provwh.transport.batches import write_batch

# --- records --------------------------------------------------------------------------------

T0 = 1_700_000_000.0


def telemetry(i: int) -> dict[str, Any]:
    return {
        "cpu": {"times_avg": {"user": 10.0 + i, "system": 2.5, "idle": 100.0}, "percent_all": 50.0},
        "memory": {
            "virtual": {"total": 8_000, "used": 3_000 + i, "available": 5_000, "percent": 37.5},
            "swap": {"total": 0, "used": 0, "percent": 0.0},
        },
        "process": {
            "memory": {"rss": 1_000 + i, "vms": 9_000},
            "cpu_percent": 99.5,
            "num_threads": 4,
        },
        "disk": {"disk_usage": {"percent": 40.0}, "io_sum": {"read_bytes": 10, "write_bytes": 20}},
        "network": {"netio_sum": {"bytes_sent": 7, "bytes_recv": 8}},
    }


def task(i: int, wf: str = "wf-1", **extra: Any) -> dict[str, Any]:
    rec = {
        "type": "task",
        "task_id": f"{i:016x}-{i}",
        "workflow_id": wf,
        "campaign_id": "camp-1",
        "activity_id": "step" if i % 2 else "train",
        "status": "FINISHED",
        "used": {"x": i, "lr": 0.5, "path": f"/data/in_{i}.csv", "opts": {"epochs": 3}},
        "generated": {"y": i * 2, "out": f"/data/out_{i}.bin"},
        "started_at": T0 + i,
        "ended_at": T0 + i + 0.25,
        "hostname": "node-1",
        "telemetry_at_start": telemetry(i),
        "telemetry_at_end": telemetry(i + 1),
    }
    rec.update(extra)
    return rec


def workflow(wf: str = "wf-1", **extra: Any) -> dict[str, Any]:
    rec = {
        "type": "workflow",
        "workflow_id": wf,
        "name": "demo",
        "campaign_id": "camp-1",
        "started_at": T0,
        "user": "alice",
    }
    rec.update(extra)
    return rec


def write_jsonl(path: Any, records: list[dict[str, Any]]) -> str:
    write_batch(str(path), records, "jsonl", fsync=False)
    return str(path)


def write_lines(path: Any, lines: list[bytes]) -> str:
    with open(path, "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    return str(path)


# --- queries ------------------------------------------------------------------------------------


def query(target: Any, sql: str, params: Any = None) -> list[tuple]:
    """Rows of ``sql`` from a DuckDB path or a PostgreSQL URL (either URL form)."""
    if isinstance(target, str) and target.startswith("postgresql"):
        url = target.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(url) as conn:
            return conn.execute(sql, params).fetchall()
    with duckdb.connect(str(target), read_only=True) as conn:
        return conn.execute(sql.replace("%s", "?"), params).fetchall()


def count(target: Any, table: str) -> int:
    return query(target, f"SELECT count(*) FROM {table}")[0][0]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def as_json(value):
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def dump(location) -> dict[str, list]:
    """Every warehouse table, rows sorted, JSON parsed: comparable across engines."""
    from provwh.warehouse.schema import metadata

    out = {}
    for table in metadata.sorted_tables:
        cols = [
            c.name
            for c in table.columns
            if c.name not in ("loaded_at", "load_seconds", "rejected_at")
        ]
        keys = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
        sql = f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)} FROM {table.name}"
        rows = query(location, f"{sql} ORDER BY {keys}")
        out[table.name] = [
            tuple(bytes(v) if isinstance(v, memoryview) else as_json(v) for v in r) for r in rows
        ]
    return out
