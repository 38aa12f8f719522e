"""Helpers for the query tests: a throwaway PostgreSQL cluster, loading, the parity fixture."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import orjson
from pg_support import (  # noqa: F401
    TEMPLATE,
    PgCluster,
    PgDatabases,
    can_connect,
    find_pg_bin,
    with_db,
)

from provwh.transport.batches import write_batch

# --- PostgreSQL -----------------------------------------------------------------------------


# --- loading --------------------------------------------------------------------------------


def write_batches(folder: Any, batches: list[list[dict]], fmt: str = "jsonl") -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, records in enumerate(batches):
        path = os.path.join(str(folder), f"{i:04d}-batch.{fmt}")
        write_batch(path, records, fmt, fsync=False)
        paths.append(path)
    return paths


def load(target: Any, paths: list[str]) -> None:
    """Load batch files with the warehouse loader, then derive lineage."""
    from provwh.warehouse.loader import Loader

    loader = Loader([target])
    try:
        for path in paths:
            loader.load_file(path)
        loader.derive_lineage()
    finally:
        loader.close()


@contextlib.contextmanager
def every_source(
    pg_server: Any, files: list[str], tmp_path_factory: Any, as_files: bool = True
) -> Iterator[dict]:
    """``files`` loaded into a fresh PostgreSQL database and a DuckDB file, and (``as_files``)
    read as they are: each source as a ``DBAPI`` by name (postgres, duckdb, files), closed and
    dropped at the end."""
    from provwh.query.api import DBAPI
    from provwh.warehouse.duck import DuckTarget
    from provwh.warehouse.pg import PgTarget

    pg = PgDatabases(pg_server, "provwh_q_")
    url = pg.create()
    target = PgTarget(url)
    load(target, files)
    target.close()
    path = str(tmp_path_factory.mktemp("duck") / "w.duckdb")
    load(DuckTarget(path), files)
    out = {"postgres": DBAPI.from_postgres(url), "duckdb": DBAPI.from_duckdb(path)}
    if as_files:
        out["files"] = DBAPI.from_files(files)
    try:
        yield out
    finally:
        for db in out.values():
            db.close()
        pg.drop_all()


# --- the parity fixture ---------------------------------------------------------------------

T0 = 1_700_000_000.0


def telemetry(i: int) -> dict[str, Any]:
    return {
        "cpu": {
            "times_avg": {"user": 10.0 + i, "system": 2.5, "idle": 100.0},
            "percent_all": 50.0 + i,
        },
        "memory": {
            "virtual": {"total": 8_000, "used": 3_000 + i, "available": 5_000, "percent": 37.5},
            "swap": {"total": 0, "used": 0, "percent": 0.0},
        },
        "process": {"memory": {"rss": 1_000 + i, "vms": 9_000}, "cpu_percent": 99.5},
    }


def _task(tid: str, wf: str, camp: str, activity: str, start: float | None, end: float | None,
          status: str = "FINISHED", host: str = "h1", **extra: Any) -> dict[str, Any]:  # fmt: skip
    rec: dict[str, Any] = {
        "type": "task",
        "task_id": tid,
        "workflow_id": wf,
        "campaign_id": camp,
        "activity_id": activity,
        "status": status,
        "hostname": host,
    }
    if start is not None:
        rec["started_at"] = T0 + start
    if end is not None:
        rec["ended_at"] = T0 + end
    rec.update(extra)
    return rec


MODEL_V0 = b"\x00model-bytes-v0\xff"
MODEL_V1 = b"model-bytes-v1"


def _binary(data: bytes) -> dict:
    return {"$binary": {"base64": base64.b64encode(data).decode(), "subType": "00"}}


def parity_batches() -> list[list[dict[str, Any]]]:
    """Chain, diamond (with a parent and an explicit dependency), cycle, trivial values, time
    order, failing and running tasks, nested values, objects: 3 workflows in 2 campaigns,
    spread over batches, one task and the workflows arriving in parts."""
    A, B = "camp-A", "camp-B"
    chain = [
        _task("a1", "wf-chain", A, "load", 0, 1,
              used={"path": "/data/raw.csv", "x": 1.5},
              generated={"data_path": "/data/clean.parquet", "rows": 100}),
        _task("a2", "wf-chain", A, "train", 2, 4,
              used={"data_path": "/data/clean.parquet", "lr": 0.01, "x": 5},
              generated={"model": "/models/m1.pt", "loss": 0.25},
              custom_metadata={"owner": "alice", "priority": 2},
              telemetry_at_start=telemetry(0), telemetry_at_end=telemetry(4)),
        _task("a3", "wf-chain", A, "evaluate", 5, 6,
              used={"model": "/models/m1.pt", "x": 3}, generated={"accuracy": 0.875},
              tags=["eval", "final"]),
    ]  # fmt: skip
    diamond = [
        _task("d1", "wf-diamond", A, "split", 10, 11, host="h2",
              generated={"shard_a": "/s/a.bin", "shard_b": "/s/b.bin"}),
        _task("d1c", "wf-diamond", A, "split_part", 10.25, 10.75, host="h2",
              parent_task_id="d1"),
        _task("d2", "wf-diamond", A, "proc", 12, 13, host="h2",
              used={"shard": "/s/a.bin", "x": 7}, generated={"out": "/s/a.out"}),
        _task("d3", "wf-diamond", A, "proc", 12, None, status="RUNNING", host="h3",
              used={"shard": "/s/b.bin", "x": 2}),
        _task("d4", "wf-diamond", A, "merge", 15, 16, host="h2",
              used={"a": "/s/a.out", "b": "/s/b.out"}, dependencies=["d1"]),
    ]  # fmt: skip
    misc = [
        _task("c1", "wf-misc", B, "cycle", 40, 41, dependencies=["c3"]),
        _task("c2", "wf-misc", B, "cycle", 41, 42, dependencies=["c1"]),
        _task("c3", "wf-misc", B, "cycle", 42, 43, dependencies=["c2"]),
        _task("t1", "wf-misc", B, "produce", 20, 25,
              generated={"flag": True, "n": 1, "s": "x", "none": None, "big": 42}),
        _task("t2", "wf-misc", B, "consume", 26, 27,
              used={"flag": True, "n": 1, "s": "x", "none": None}),
        _task("t3", "wf-misc", B, "consume", 26, 28, used={"big": 42}),
        _task("t4", "wf-misc", B, "consume", 21, 22, used={"big": 42}),
        _task("f1", "wf-misc", B, "fail", 30, 30.5, status="ERROR",
              stderr="ValueError: bad", used={"x": -3}),
        _task("r1", "wf-misc", B, "serve", 31, None, status="RUNNING", used={"x": 10}),
        _task("n1", "wf-misc", B, "nested", 32, 32.125,
              used={"cfg": {"depth": 4, "name": "résumé"}, "xs": [1, 2, 3], "big": 2**60}),
    ]  # fmt: skip
    workflows = [
        {"type": "workflow", "workflow_id": "wf-chain", "name": "chain", "campaign_id": A,
         "user": "alice", "started_at": T0, "status": "RUNNING"},
        {"type": "workflow", "workflow_id": "wf-diamond", "name": "diamond", "campaign_id": A,
         "user": "bob", "started_at": T0 + 10, "status": "RUNNING"},
        {"type": "workflow", "workflow_id": "wf-misc", "name": "misc", "campaign_id": B,
         "user": "carol", "started_at": T0 + 19, "status": "RUNNING",
         "used": {"mode": "fast", "n": 3}},
    ]  # fmt: skip
    objects = [
        {"type": "object", "object_id": "obj-1", "version": 0, "object_type": "ml_model",
         "task_id": "a2", "workflow_id": "wf-chain", "data": _binary(MODEL_V0),
         "created_at": T0 + 4, "updated_at": T0 + 4, "custom_metadata": {"framework": "torch"}},
        {"type": "object", "object_id": "obj-1", "version": 1, "prev_version": 0,
         "object_type": "ml_model", "task_id": "a2", "workflow_id": "wf-chain",
         "data": _binary(MODEL_V1), "created_at": T0 + 4, "updated_at": T0 + 6},
    ]  # fmt: skip
    ends = [  # the second part of records that arrive in two
        {"type": "workflow", "workflow_id": "wf-chain", "ended_at": T0 + 7, "status": "FINISHED"},
        {"type": "workflow", "workflow_id": "wf-diamond", "ended_at": T0 + 17, "status": "ERROR"},
        {"type": "task", "task_id": "d3", "status": "ERROR", "ended_at": T0 + 14,
         "stderr": "boom", "generated": {"out": "/s/b.out"}},
    ]  # fmt: skip
    return [workflows + chain, diamond + objects[:1], misc + objects[1:], ends]


ALL_TASKS = sorted("a1 a2 a3 d1 d1c d2 d3 d4 c1 c2 c3 t1 t2 t3 t4 f1 r1 n1".split())


# --- comparing rows across engines ----------------------------------------------------------

JSON_COLUMNS = {"value_json", "custom_metadata"}


def normalize(names: list[str], rows: list[tuple]) -> list[tuple]:
    """Rows comparable across engines: JSON text parsed, sorted by their repr."""
    out = []
    for row in rows:
        vals = []
        for name, v in zip(names, row, strict=True):
            if name in JSON_COLUMNS and isinstance(v, str):
                v = orjson.loads(v)
            if isinstance(v, dict | list):
                v = orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
            vals.append(v)
        out.append(tuple(vals))
    return sorted(out, key=lambda r: tuple((x is None, repr(x)) for x in r))


def ts(seconds: float) -> dt.datetime:
    """The stored timestamp of ``T0 + seconds``."""
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=round((T0 + seconds) * 1e6))
