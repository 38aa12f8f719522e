"""Loader benchmark: N tasks as batch files -> PostgreSQL and DuckDB, next to a raw COPY.

    python benchmarks/load.py               # 1,000,000 tasks
    python benchmarks/load.py --quick       # 50,000 tasks (smoke run)
    python benchmarks/load.py --n 200000 --engines postgres

Each task has 4 used and 2 generated keys (one of them the previous task's output file, so
there is data lineage to derive) and a telemetry snapshot at start and end shaped like the
capture layer's. The batches are written once (JSONL, ``--batch-size`` records each); every
phase then runs in a child process of its own, so its peak memory (RSS) is its own:

- raw COPY: psycopg ``COPY`` of the same tasks (every field a column, nested dicts as JSONB)
  into an unindexed table, with lz4 TOAST compression like the loader: the floor for getting
  these tasks into PostgreSQL at all;
- raw DuckDB ingest: DuckDB's own ``read_json`` of the same files into one table of the same
  columns (nested dicts as JSON), no normalization, committed to a file: the floor for DuckDB;
- provwh -> PostgreSQL and provwh -> DuckDB: ``Loader.load_files`` (parsing, normalization,
  one transaction per batch, staging + upserts, ledger) then ``derive_lineage``.

rows/s counts every row written (tasks, key/value rows, telemetry rows, edges, ledger...).
Needs a PostgreSQL server (``--postgres-url``, default ``$PROVWH_TEST_POSTGRES_URL`` or
postgres@127.0.0.1:5432); a database is created for each phase and dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

T0 = 1_700_000_000.0


# --- data ----------------------------------------------------------------------------------------


def _telemetry(rng: random.Random, i: int) -> dict:
    ticks = {k: round(rng.uniform(0, 1e5), 2) for k in
             ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest",
              "guest_nice")}  # fmt: skip
    total = 33_000_000_000
    avail = total - rng.randrange(1_000_000_000, 8_000_000_000)
    return {
        "cpu": {"times_avg": ticks, "percent_all": round(rng.uniform(0, 100), 1)},
        "memory": {
            "virtual": {"total": total, "available": avail, "percent": 21.5,
                        "used": total - avail, "free": avail // 2, "active": 5_000_000_000 + i,
                        "inactive": 4_000_000_000, "buffers": 300_000_000,
                        "cached": 9_000_000_000, "shared": 1_000_000, "slab": 800_000_000},
            "swap": {"total": 0, "used": 0, "free": 0, "percent": 0.0},
        },
        "process": {
            "pid": 4242, "cpu_number": i % 2,
            "memory": {"rss": 90_000_000 + i, "vms": 900_000_000, "shared": 30_000_000,
                       "text": 3_000_000, "lib": 0},
            "memory_percent": 0.27,
            "cpu_times": {"user": 12.5 + i / 1000, "system": 1.5, "children_user": 0.0,
                          "children_system": 0.0, "iowait": 0.0},
            "cpu_percent": round(rng.uniform(0, 100), 1), "num_threads": 4,
            "num_ctx_switches": {"voluntary": 1200 + i, "involuntary": 40},
            "io_counters": {"read_count": 10_000 + i, "write_count": 500, "read_bytes": 4096,
                            "write_bytes": 8192, "read_chars": 1_000_000, "write_chars": 20_000},
            "num_open_file_descriptors": 12,
        },
    }  # fmt: skip


def _task(rng: random.Random, i: int, run: str, workflow_id: str = "wf-bench") -> dict:
    start = T0 + i * 0.01
    return {
        "type": "task",
        "task_id": f"{run}-{i}",
        "workflow_id": workflow_id,
        "campaign_id": "campaign-bench",
        "activity_id": ("train", "evaluate", "preprocess")[i % 3],
        "used": {
            "x": i,
            "lr": 0.001,
            "data_path": f"/scratch/out_{i - 1}.npz",
            "opts": {"epochs": 3},
        },
        "generated": {"loss": round(rng.random(), 6), "out_path": f"/scratch/out_{i}.npz"},
        "status": "FINISHED",
        "started_at": start,
        "ended_at": start + 0.005,
        "hostname": "node-007",
        "user": "bench",
        "telemetry_at_start": _telemetry(rng, i),
        "telemetry_at_end": _telemetry(rng, i + 1),
    }


def workflow_of(i: int, per_workflow: int | None) -> str:
    """The workflow of task ``i``: ``wf-bench``, or ``wf-00000``... with ``per_workflow``."""
    return "wf-bench" if per_workflow is None else f"wf-{i // per_workflow:05d}"


def generate(
    folder: Path, n: int, batch_size: int, per_workflow: int | None = None, run: str | None = None
) -> list[str]:
    """N tasks and their workflow records as JSONL batches in ``folder``; streaming. One
    workflow (``wf-bench``), or one per ``per_workflow`` tasks; task ids ``<run>-<i>``."""
    from provwh.transport.batches import write_batch

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(42)
    run = run or uuid.uuid4().hex[:16]
    files = []
    for b, first in enumerate(range(0, n, batch_size)):
        records = []
        for i in range(first, min(first + batch_size, n)):
            wf = workflow_of(i, per_workflow)
            if i == 0 or wf != workflow_of(i - 1, per_workflow):
                start = T0 + i * 0.01
                records.append({"type": "workflow", "workflow_id": wf, "name": "bench",
                                "started_at": start})  # fmt: skip
            records.append(_task(rng, i, run, wf))
        path = folder / f"{b:07d}.jsonl"
        write_batch(str(path), records, "jsonl", fsync=False)
        files.append(str(path))
    return files


# --- phases (each runs in a child process) -------------------------------------------------------


def _admin(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _create_db(admin_url: str) -> str:
    import psycopg

    name = f"provwh_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


def _drop_db(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _db_url(admin_url: str, name: str) -> str:
    return admin_url.rpartition("/")[0] + "/" + name


def phase_raw_copy(files: list[str], admin_url: str) -> dict:
    import orjson
    import psycopg

    from provwh.core.model import TASK_FIELDS
    from provwh.warehouse.schema import TASK_JSON_FIELDS, TASK_TIME_FIELDS
    from provwh.warehouse.times import micros_to_datetime, to_micros

    name = _create_db(admin_url)
    try:
        with psycopg.connect(_db_url(admin_url, name)) as conn:
            cols = [
                f'"{f}" ' + ("jsonb" if f in TASK_JSON_FIELDS else
                             "timestamp" if f in TASK_TIME_FIELDS else "text")
                for f in TASK_FIELDS
            ]  # fmt: skip
            conn.execute(f"CREATE TABLE raw_tasks ({', '.join(cols)})")
            conn.commit()
            conn.execute("SET default_toast_compression = 'lz4'")  # as the loader does
            kinds = [
                2 if f in TASK_JSON_FIELDS else 1 if f in TASK_TIME_FIELDS else 0
                for f in TASK_FIELDS
            ]
            collist = ", ".join(f'"{f}"' for f in TASK_FIELDS)
            t0 = time.perf_counter()
            n = 0
            for path in files:
                with open(path, "rb") as fh, conn.cursor() as cur:
                    with cur.copy(f"COPY raw_tasks ({collist}) FROM STDIN") as cp:
                        for line in fh:
                            rec = orjson.loads(line)
                            if rec.get("type") != "task":
                                continue
                            row = []
                            for f, k in zip(TASK_FIELDS, kinds, strict=True):
                                v = rec.get(f)
                                if v is not None and k == 2:
                                    v = orjson.dumps(v).decode()
                                elif v is not None and k == 1:
                                    v = micros_to_datetime(to_micros(v))
                                row.append(v)
                            cp.write_row(row)
                            n += 1
                conn.commit()
            seconds = time.perf_counter() - t0
            server_cpu = _backend_cpu(conn)
    finally:
        _drop_db(admin_url, name)
    return {"tasks": n, "rows": n, "seconds": seconds, "server_cpu": server_cpu}


def _backend_cpu(conn) -> float | None:
    """CPU seconds the server process of ``conn`` used so far (a server on this machine)."""
    try:
        with open(f"/proc/{conn.info.backend_pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _fresh_duckdb(workdir: str, name: str) -> str:
    """The path of a DuckDB file in ``workdir``, any earlier one (and its WAL) removed."""
    path = os.path.join(workdir, name)
    for p in (path, path + ".wal"):
        if os.path.exists(p):
            os.remove(p)
    return path


def phase_duck_raw(files: list[str], workdir: str) -> dict:
    import duckdb

    from provwh.core.model import TASK_FIELDS
    from provwh.warehouse.duck import LOAD_MEMORY_LIMIT
    from provwh.warehouse.schema import TASK_JSON_FIELDS, TASK_TIME_FIELDS

    path = _fresh_duckdb(workdir, "raw.duckdb")
    columns = {
        f: "JSON" if f in TASK_JSON_FIELDS else "DOUBLE" if f in TASK_TIME_FIELDS else "VARCHAR"
        for f in TASK_FIELDS
    }
    columns["type"] = "VARCHAR"
    conn = duckdb.connect(path, config={"memory_limit": LOAD_MEMORY_LIMIT})  # as the loader
    t0 = time.perf_counter()
    conn.execute(
        "CREATE TABLE raw_tasks AS SELECT * FROM read_json(?, format = 'newline_delimited',"
        " columns = ?) WHERE type = 'task'",
        [files, columns],
    )
    conn.execute("CHECKPOINT")
    seconds = time.perf_counter() - t0
    n = conn.execute("SELECT count(*) FROM raw_tasks").fetchone()[0]
    conn.close()
    return {"tasks": n, "rows": n, "seconds": seconds}


def phase_provwh(files: list[str], engine: str, admin_url: str, workdir: str) -> dict:
    from provwh.warehouse.loader import Loader

    name = None
    if engine == "postgres":
        from provwh.warehouse.pg import PgTarget

        name = _create_db(admin_url)
        target = PgTarget(_db_url(admin_url, name))
    else:
        from provwh.warehouse.duck import DuckTarget

        target = DuckTarget(_fresh_duckdb(workdir, "bench.duckdb"))
    try:
        loader = Loader([target])
        t0 = time.perf_counter()
        stats = loader.load_files(files)
        t_load = time.perf_counter() - t0
        loader.derive_lineage()
        seconds = time.perf_counter() - t0
        edges = _count(target, "SELECT count(*) FROM task_edges WHERE kind = 'data'")
        server_cpu = _backend_cpu(target.connect()) if engine == "postgres" else None
        loader.close()
        size = os.path.getsize(target.path) if engine == "duckdb" else None
    finally:
        if name:
            _drop_db(admin_url, name)
    return {
        "tasks": stats.tasks,
        "rows": stats.rows,
        "seconds": seconds,
        "load_seconds": t_load,
        "lineage_seconds": seconds - t_load,
        "data_edges": edges,
        "file_bytes": size,
        "server_cpu": server_cpu,
    }


def _count(target, sql: str) -> int:
    with target.transaction() as tx:
        return tx.scalar(sql)


def _child(args: argparse.Namespace) -> None:
    files = sorted(str(p) for p in Path(args.files_dir).glob("*.jsonl"))
    if args.phase == "raw":
        result = phase_raw_copy(files, args.postgres_url)
    elif args.phase == "duckraw":
        result = phase_duck_raw(files, args.workdir)
    else:
        result = phase_provwh(files, args.phase, args.postgres_url, args.workdir)
    # its own peak, plus the largest of its worker processes' (PostgreSQL loads)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_rss_mb"] = (peak + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print("RESULT " + json.dumps(result))


def _run_phase(args: argparse.Namespace, phase: str, files_dir: Path, workdir: Path) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--files-dir", str(files_dir),
           "--workdir", str(workdir), "--postgres-url", args.postgres_url]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{out.stdout}\n{out.stderr}")
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000, help="tasks (default 1,000,000)")
    p.add_argument("--quick", action="store_true", help="50,000 tasks (smoke run)")
    p.add_argument("--batch-size", type=int, default=1000, help="records per batch file")
    p.add_argument("--engines", default="postgres,duckdb", help="comma list: postgres,duckdb")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("PROVWH_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server where databases can be created",
    )
    p.add_argument("--workdir", help="where batches (and the DuckDB file) go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--files-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.postgres_url = _admin(args.postgres_url)
    if args.phase:
        _child(args)
        return
    n = 50_000 if args.quick else args.n
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="provwh-bench-"))
    files_dir = workdir / "batches"
    try:
        t0 = time.perf_counter()
        files = generate(files_dir, n, args.batch_size)
        size = sum(os.path.getsize(f) for f in files)
        print(f"{n:,} tasks in {len(files):,} JSONL batches of {args.batch_size:,} "
              f"({size / 1e6:,.0f} MB), generated in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        results = {}
        if "postgres" in engines:
            results["raw COPY -> PostgreSQL (no index)"] = _run_phase(args, "raw", files_dir,
                                                                      workdir)  # fmt: skip
            results["provwh -> PostgreSQL"] = _run_phase(args, "postgres", files_dir, workdir)
        if "duckdb" in engines:
            results["raw read_json -> DuckDB (no index)"] = _run_phase(args, "duckraw", files_dir,
                                                                       workdir)  # fmt: skip
            results["provwh -> DuckDB"] = _run_phase(args, "duckdb", files_dir, workdir)
        _report(results)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _report(results: dict) -> None:
    print(f"\n{'':36s} {'seconds':>8s} {'tasks/s':>9s} {'rows/s':>9s} {'peak RSS':>9s}")
    for label, r in results.items():
        print(f"{label:36s} {r['seconds']:8.1f} {r['tasks'] / r['seconds']:9,.0f} "
              f"{r['rows'] / r['seconds']:9,.0f} {r['peak_rss_mb']:7,.0f} MB")  # fmt: skip
    raw = results.get("raw COPY -> PostgreSQL (no index)")
    pg = results.get("provwh -> PostgreSQL")
    if raw and pg:
        t_ratio = (pg["tasks"] / pg["seconds"]) / (raw["tasks"] / raw["seconds"])
        r_ratio = (pg["rows"] / pg["seconds"]) / (raw["rows"] / raw["seconds"])
        print(f"\nprovwh -> PostgreSQL vs raw COPY: {t_ratio:.0%} of its tasks/s, "
              f"{r_ratio:.0%} of its rows/s (target: >= 50%)")  # fmt: skip
        if raw.get("server_cpu") and pg.get("server_cpu"):
            print(f"PostgreSQL server process CPU: raw COPY {raw['server_cpu']:.1f} s, provwh "
                  f"{pg['server_cpu']:.1f} s: with a client that cost nothing, provwh could reach "
                  f"{raw['server_cpu'] / pg['server_cpu']:.0%} of raw COPY's tasks/s "
                  f"(if raw COPY is bound by the server)")  # fmt: skip
    raw_duck = results.get("raw read_json -> DuckDB (no index)")
    duck = results.get("provwh -> DuckDB")
    if raw_duck and duck:
        ratio = (duck["tasks"] / duck["seconds"]) / (raw_duck["tasks"] / raw_duck["seconds"])
        print(f"provwh -> DuckDB vs DuckDB's own read_json ingest: {ratio:.0%} of its tasks/s "
              f"(target: >= 100,000 tasks/s)")  # fmt: skip
    for label, r in results.items():
        if "lineage_seconds" in r:
            extra = f", file {r['file_bytes'] / 1e6:,.0f} MB" if r.get("file_bytes") else ""
            print(f"{label}: load {r['load_seconds']:.1f} s + lineage {r['lineage_seconds']:.1f} s"
                  f" ({r['data_edges']:,} data edges){extra}")  # fmt: skip


if __name__ == "__main__":
    main()
