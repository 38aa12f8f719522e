"""Query benchmark: the DB API on N tasks, in PostgreSQL and in a DuckDB file.

    python benchmarks/query.py              # 1,000,000 tasks
    python benchmarks/query.py --quick      # 50,000 tasks (smoke run)
    python benchmarks/query.py --n 200000 --engines duckdb

The tasks (``--per-workflow`` per workflow, 1,000 by default) have 3 used and 2 generated
keys, ``used.x`` uniform in [0, 1,000,000); one more workflow is a 10,000-task DAG (100
layers of 100, each task depending on 2 tasks of the layer before it). Everything is written
as batch files and loaded with the warehouse loader (not timed here: see
``benchmarks/load.py``). Then, per engine, the median of ``--repeat`` runs of:

- tasks of one workflow: ``task_query({"workflow_id": w})`` (full records, decoded);
- ``used.x > v``: ``task_query({"used.x": {"$gt": v}})`` (v keeps 0.1 % of the tasks);
- ``task_summary`` of one workflow, and of every task;
- upstream of a leaf of the DAG: ``get_upstream(leaf)`` (every ancestor, with its depth).

PostgreSQL is timed with the schema's indexes, then again after adding the index the query
layer recommends for value ranges (``task_values (key_path, value_num)``). DuckDB is timed
with the file held open (``DBAPI.hold()``); opening the file per call adds its open time,
printed too. Needs a PostgreSQL server (``--postgres-url``, default
``$PROVWH_TEST_POSTGRES_URL`` or postgres@127.0.0.1:5432); its database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

T0 = 1_700_000_000.0
DAG_LAYERS, DAG_WIDTH = 100, 100
RECOMMENDED_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_task_values_key_path_value_num"
    " ON task_values (key_path, value_num)"
)


def _tasks(n: int, per_workflow: int, seed: int = 7):
    rng = random.Random(seed)
    for i in range(n):
        wf = i // per_workflow
        start = T0 + i * 0.01
        yield {
            "type": "task",
            "task_id": f"t{i:08d}",
            "workflow_id": f"wf-{wf:05d}",
            "campaign_id": f"camp-{wf % 10}",
            "activity_id": ("load", "train", "evaluate", "report")[i % 4],
            "status": "ERROR" if i % 97 == 0 else "FINISHED",
            "hostname": f"node-{i % 8}",
            "started_at": start,
            "ended_at": start + rng.uniform(0.001, 2.0),
            "used": {"x": rng.randrange(1_000_000), "lr": 0.001 * (i % 10), "path": f"/d/{i}.csv"},
            "generated": {"y": rng.random(), "out": f"/o/{i}.bin"},
        }


def _dag():
    for layer in range(DAG_LAYERS):
        for j in range(DAG_WIDTH):
            rec = {
                "type": "task",
                "task_id": f"dag-{layer:03d}-{j:03d}",
                "workflow_id": "wf-dag",
                "activity_id": f"layer-{layer}",
                "status": "FINISHED",
                "started_at": T0 + layer,
                "ended_at": T0 + layer + 0.5,
            }
            if layer:
                parents = {j, (j + 1) % DAG_WIDTH, (j * 7 + 3) % DAG_WIDTH}
                rec["dependencies"] = [f"dag-{layer - 1:03d}-{p:03d}" for p in sorted(parents)]
            yield rec


def write_data(folder: Path, n: int, per_workflow: int, batch: int) -> list[str]:
    from provwh.transport.batches import write_batch

    folder.mkdir(parents=True, exist_ok=True)
    paths, records = [], []

    def flush() -> None:
        path = folder / f"{len(paths):06d}.jsonl"
        write_batch(path, records, "jsonl", fsync=False)
        paths.append(str(path))
        records.clear()

    for rec in _tasks(n, per_workflow):
        records.append(rec)
        if len(records) >= batch:
            flush()
    records.extend(_dag())
    flush()
    return paths


def load(target, paths: list[str]) -> float:
    from provwh.warehouse.loader import Loader

    t0 = time.perf_counter()
    loader = Loader([target])
    try:
        loader.load_files(paths)
        loader.derive_lineage()
    finally:
        loader.close()
    return time.perf_counter() - t0


def timed(fn, repeat: int) -> tuple[float, object]:
    result = fn()  # warm-up (plans, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, result


def run_queries(db, n: int, per_workflow: int, repeat: int) -> list[tuple[str, float, str]]:
    wf = f"wf-{(n // per_workflow) // 2:05d}"
    v = 999_000
    leaf = f"dag-{DAG_LAYERS - 1:03d}-000"
    out = []
    ms, res = timed(lambda: db.task_query({"workflow_id": wf}), repeat)
    out.append(("tasks of one workflow", ms, f"{len(res):,} tasks"))
    ms, res = timed(lambda: db.task_query({"used.x": {"$gt": v}}), repeat)
    out.append((f"used.x > {v:,}", ms, f"{len(res):,} tasks"))
    ms, res = timed(lambda: db.task_summary({"workflow_id": wf}), repeat)
    out.append(("task_summary, one workflow", ms, f"{res['count']:,} tasks"))
    ms, res = timed(lambda: db.task_summary({}), max(1, repeat // 2))
    out.append(("task_summary, all tasks", ms, f"{res['count']:,} tasks"))
    ms, res = timed(lambda: db.get_upstream(leaf), repeat)
    depth = max(r["depth"] for r in res) if res else 0
    out.append(("upstream of a DAG leaf", ms, f"{len(res):,} tasks, depth {depth}"))
    return out


def report(title: str, rows: list[tuple[str, float, str]]) -> None:
    print(f"\n{title}")
    for name, ms, what in rows:
        print(f"  {name:<28} {ms:9.1f} ms   ({what})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="tasks (default 1,000,000)")
    ap.add_argument("--quick", action="store_true", help="50,000 tasks")
    ap.add_argument("--per-workflow", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--engines", default="postgres,duckdb")
    ap.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "PROVWH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    ap.add_argument("--workdir", help="keep data and the DuckDB file here (default: temporary)")
    args = ap.parse_args(argv)
    n = 50_000 if args.quick else args.n
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]

    from provwh.query.api import DBAPI

    work = Path(args.workdir or tempfile.mkdtemp(prefix="provwh-qbench-"))
    print(f"provwh query benchmark: {n:,} tasks ({args.per_workflow:,} per workflow)"
          f" + a {DAG_LAYERS * DAG_WIDTH:,}-task DAG; median of {args.repeat} runs")  # fmt: skip
    t0 = time.perf_counter()
    paths = write_data(work / "batches", n, args.per_workflow, args.batch_size)
    print(f"batch files: {len(paths)} written in {time.perf_counter() - t0:.1f} s")
    try:
        if "postgres" in engines:
            import psycopg

            from provwh.warehouse.migrate import libpq_url
            from provwh.warehouse.pg import PgTarget

            admin = libpq_url(args.postgres_url)
            name = f"provwh_qbench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            url = admin.rsplit("/", 1)[0] + "/" + name
            try:
                target = PgTarget(url)
                print(f"PostgreSQL: loaded in {load(target, paths):.1f} s")
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
                target.close()
                db = DBAPI.from_postgres(url)
                report(
                    "PostgreSQL (schema indexes)",
                    run_queries(db, n, args.per_workflow, args.repeat),
                )
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(RECOMMENDED_INDEX)
                    conn.execute("ANALYZE task_values")
                rows = run_queries(db, n, args.per_workflow, args.repeat)
                report("PostgreSQL (+ index task_values (key_path, value_num))", rows)
                db.close()
            finally:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if "duckdb" in engines:
            from provwh.warehouse.duck import DuckTarget

            path = work / "bench.duckdb"
            if path.exists():
                path.unlink()
            print(f"DuckDB: loaded in {load(DuckTarget(path), paths):.1f} s")
            db = DBAPI.from_duckdb(path)
            with db.hold():
                rows = run_queries(db, n, args.per_workflow, args.repeat)
            report("DuckDB (file held open)", rows)
            ms, _ = timed(lambda: db.task_summary({"workflow_id": "wf-00000"}), args.repeat)
            print(
                f"  (a call that opens the file itself: task_summary of one workflow {ms:.1f} ms)"
            )
            db.close()
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
