"""Scale benchmark: N producer processes x M tasks -> one consumer -> PostgreSQL, end to end.

    python benchmarks/scale.py                  # 4 producers x 250,000 tasks, spool and redis
    python benchmarks/scale.py --quick          # 4 x 10,000 (smoke run, well under 2 minutes)
    python benchmarks/scale.py --producers 4 --tasks 50000 --transports spool --lightweight

Each producer is a process of its own (this script with ``--producer``) that runs M calls of a
``@flowcept_task`` (``@lightweight_flowcept_task`` with ``--lightweight``) function inside
``Flowcept(workflow_id=<shared id>, start_persistence=False, save_workflow=False)``. Batches
travel (a) through a shared spool folder (``PROVWH_SPOOL_DIR``) or (b) through a Redis Stream
(``PROVWH_BUFFER_TRANSPORT=redis``, a stream key of its own), and ONE consumer in this process
(``SpoolConsumer`` / ``RedisConsumer``) loads them into a fresh PostgreSQL database. The consumer
starts first; the producers are then started together. This process polls
``SELECT count(*) FROM tasks`` until all N x M tasks are committed.

Per transport it prints: end-to-end tasks/s (first task captured -> last row committed),
capture-only tasks/s (first -> last task captured, over all producers), the lag from the last
task captured to the last row committed, and checks exactly N x M distinct task ids after the
consumer drained (exits non-zero otherwise). The baseline, in the same run: a raw psycopg COPY of
N x M minimal task rows into an unindexed table. Target (issue 7): end-to-end >= 50,000 tasks/s,
lag <= 2 s. Every database, stream and temporary folder is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
TARGET_TPS = 50_000.0
TARGET_LAG = 2.0
POLL = 0.05


# --- producer (child process) ------------------------------------------------------------------


def producer(args: argparse.Namespace) -> None:
    """M captured calls; prints the wall times of the first and last capture and of stop()."""
    from provwh import Flowcept, flowcept_task, lightweight_flowcept_task

    deco = lightweight_flowcept_task if args.lightweight else flowcept_task

    @deco
    def step(x):
        return x + 1

    m = args.tasks
    with Flowcept(workflow_id=args.workflow_id, start_persistence=False, save_workflow=False):
        step(0)
        first = time.time()
        for i in range(1, m):
            step(i)
        last = time.time()
    stopped = time.time()
    print("RESULT " + json.dumps({"first": first, "last": last, "stopped": stopped, "n": m}))


# --- database helpers --------------------------------------------------------------------------


def _db_url(name: str) -> str:
    return ADMIN_URL.rpartition("/")[0] + "/" + name


def _create_db() -> str:
    import psycopg

    name = f"provwh_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


def _drop_db(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _count(conn, sql: str) -> tuple:
    try:
        row = conn.execute(sql).fetchone()
        conn.rollback()
        return row
    except Exception:  # the table may not exist before the first batch is loaded
        conn.rollback()
        return (0,) * sql.count("count(")


# --- one transport -----------------------------------------------------------------------------


def run_transport(transport: str, args: argparse.Namespace, workdir: Path) -> dict:
    import psycopg

    from provwh.core.config import load_settings

    n, m = args.producers, args.tasks
    total = n * m
    db = _create_db()
    spool = workdir / f"spool-{transport}"
    stream = f"provwh:scale:{uuid.uuid4().hex[:12]}"
    env = dict(os.environ)
    env.update({
        "PROVWH_SPOOL_DIR": str(spool),
        "PROVWH_POSTGRES_URL": "postgresql+psycopg://" + _db_url(db).split("://", 1)[1],
        "PROVWH_DUCKDB_ENABLED": "false",
        "PROVWH_DUMP_BUFFER_ENABLED": "false",
        "PROVWH_TELEMETRY_ENABLED": "false",
        "PROVWH_BUFFER_TRANSPORT": transport,
        "PROVWH_REDIS_URL": REDIS_URL,
        "PROVWH_REDIS_STREAM": stream,
    })  # fmt: skip
    for var in ("PROVWH_SETTINGS_PATH", "FLOWCEPT_SETTINGS_PATH"):
        env.pop(var, None)
    settings = load_settings(env=env)
    consumer = None
    procs: list[subprocess.Popen] = []
    try:
        if transport == "spool":
            from provwh.warehouse.consumer import SpoolConsumer

            consumer = SpoolConsumer(spool, settings)
        else:
            from provwh.warehouse.redis_consumer import RedisConsumer

            consumer = RedisConsumer(
                settings, url=REDIS_URL, stream=stream, work_dir=workdir / f"redis-{transport}"
            )
        consumer.start()
        wf = f"scale-{uuid.uuid4().hex[:12]}"
        cmd = [sys.executable, __file__, "--producer", "--tasks", str(m), "--workflow-id", wf]
        if args.lightweight:
            cmd.append("--lightweight")
        t_launch = time.time()
        for _ in range(n):
            procs.append(subprocess.Popen(
                cmd, env=env, cwd=str(workdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True,
            ))  # fmt: skip
        committed_at = None
        deadline = time.time() + args.timeout
        with psycopg.connect(_db_url(db)) as conn:
            while time.time() < deadline:
                (count,) = _count(conn, "SELECT count(*) FROM tasks")
                if count >= total:
                    committed_at = time.time()
                    break
                if any(p.poll() not in (None, 0) for p in procs):
                    break
                time.sleep(POLL)
        results = []
        for p in procs:
            out, err = p.communicate(timeout=max(5.0, deadline - time.time()))
            if p.returncode != 0:
                raise SystemExit(f"[{transport}] producer failed (rc {p.returncode}):\n{err}")
            line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
            results.append(json.loads(line[len("RESULT ") :]))
        if committed_at is None:
            raise SystemExit(f"[{transport}] FAILED: not all {total:,} tasks committed within "
                             f"{args.timeout:.0f} s")  # fmt: skip
        consumer.stop(drain=True)
        consumer = None
        with psycopg.connect(_db_url(db)) as conn:
            rows, distinct, wfs = _count(
                conn,
                "SELECT count(*), count(DISTINCT task_id), count(DISTINCT workflow_id) FROM tasks",
            )
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if consumer is not None:
            try:
                consumer.stop(drain=False)
            except Exception as exc:
                print(f"[{transport}] consumer stop: {exc}", file=sys.stderr)
        if transport == "redis":
            try:
                import redis

                client = redis.Redis.from_url(REDIS_URL)
                client.delete(stream)
                client.close()
            except Exception as exc:
                print(f"[{transport}] could not delete stream {stream}: {exc}", file=sys.stderr)
        _drop_db(db)
    first = min(r["first"] for r in results)
    last = max(r["last"] for r in results)
    exactly_once = rows == total and distinct == total and wfs == 1
    return {
        "transport": transport,
        "tasks": total,
        "rows": rows,
        "distinct": distinct,
        "exactly_once": exactly_once,
        "startup": first - t_launch,
        "e2e_seconds": committed_at - first,
        "capture_seconds": last - first,
        "handoff_seconds": max(r["stopped"] for r in results) - first,
        "lag": committed_at - last,
    }


# --- baseline ----------------------------------------------------------------------------------


def raw_copy(total: int) -> float:
    """tasks/s of a psycopg COPY of ``total`` minimal task rows into an unindexed table."""
    import psycopg
    from psycopg.types.json import Jsonb

    db = _create_db()
    try:
        with psycopg.connect(_db_url(db)) as conn:
            conn.execute(
                "CREATE TABLE raw_tasks (task_id text, workflow_id text, activity_id text, "
                "status text, started_at timestamptz, ended_at timestamptz, hostname text, "
                "used jsonb, generated jsonb)"
            )
            conn.commit()
            wf, host = f"scale-{uuid.uuid4().hex[:12]}", os.uname().nodename
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                with cur.copy("COPY raw_tasks FROM STDIN") as cp:
                    for i in range(total):
                        now = datetime.now(UTC)
                        cp.write_row((f"{wf}-{i}", wf, "step", "FINISHED", now, now, host,
                                      Jsonb({"x": i}), Jsonb({"arg_0": i + 1})))  # fmt: skip
            conn.commit()
            seconds = time.perf_counter() - t0
    finally:
        _drop_db(db)
    return total / seconds


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--producers", type=int, default=4, help="producer processes (default 4)")
    p.add_argument("--tasks", type=int, default=250_000, help="tasks per producer")
    p.add_argument("--quick", action="store_true", help="4 x 10,000 tasks (smoke run)")
    p.add_argument("--lightweight", action="store_true", help="@lightweight_flowcept_task")
    p.add_argument("--transports", default="spool,redis", help="comma list: spool,redis")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait per transport")
    p.add_argument("--producer", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--workflow-id", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.producer:
        producer(args)
        return
    if args.quick:
        args.producers, args.tasks = 4, 10_000
        args.timeout = min(args.timeout, 50.0)
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    total = args.producers * args.tasks
    deco = "@lightweight_flowcept_task" if args.lightweight else "@flowcept_task"
    print(f"{args.producers} producers x {args.tasks:,} tasks = {total:,} tasks ({deco}), "
          f"one consumer -> PostgreSQL; {os.cpu_count()} CPUs")  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="provwh-scale-"))
    results = []
    failed = False
    try:
        for transport in transports:
            r = run_transport(transport, args, workdir)
            results.append(r)
            _report(r)
            failed |= not r["exactly_once"]
        base = raw_copy(total)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nbaseline raw psycopg COPY ({total:,} minimal rows, unindexed): {base:,.0f} tasks/s")
    for r in results:
        tps = r["tasks"] / r["e2e_seconds"]
        ok = tps >= TARGET_TPS and r["lag"] <= TARGET_LAG
        print(f"  {r['transport']:5s}: end-to-end {tps:,.0f} tasks/s = {tps / base:.0%} of raw "
              f"COPY; target (>= {TARGET_TPS:,.0f} tasks/s, lag <= {TARGET_LAG:.0f} s) "
              f"{'MET' if ok else 'NOT MET'}")  # fmt: skip
    if failed:
        raise SystemExit("FAILED: exactly-once check did not hold (see above)")


def _report(r: dict) -> None:
    e2e = r["tasks"] / r["e2e_seconds"]
    cap = r["tasks"] / r["capture_seconds"] if r["capture_seconds"] > 0 else float("inf")
    print(f"\n[{r['transport']}] {r['tasks']:,} tasks (producer start-up {r['startup']:.1f} s, "
          "not counted)")  # fmt: skip
    print(f"  end-to-end   {e2e:10,.0f} tasks/s  ({r['e2e_seconds']:.2f} s, first capture -> "
          "last commit)")  # fmt: skip
    print(f"  capture-only {cap:10,.0f} tasks/s  ({r['capture_seconds']:.2f} s, all producers)")
    print(f"  hand-off     {r['handoff_seconds']:10.2f} s        (first capture -> all producers' "
          "stop() returned: batches handed off)")  # fmt: skip
    print(f"  lag          {r['lag']:10.2f} s        (last capture -> last commit)")
    verdict = "OK" if r["exactly_once"] else "FAILED"
    print(f"  exactly-once {verdict}: {r['rows']:,} rows, {r['distinct']:,} distinct task ids, "
          f"expected {r['tasks']:,}")  # fmt: skip
    if not r["exactly_once"]:
        print(f"  !!! [{r['transport']}] exactly-once check FAILED", file=sys.stderr)


if __name__ == "__main__":
    main()
