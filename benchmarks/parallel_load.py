"""Parallel loaders into one PostgreSQL database: 1 loader against N, in the same run.

    python benchmarks/parallel_load.py                 # 200,000 tasks, 1 then 2 loaders
    python benchmarks/parallel_load.py --n 50000 --loaders 1,2,4

The batches (benchmarks/load.py's tasks: 4 used and 2 generated keys, telemetry at start and
end) are written once. For each loader count, a fresh database is created and the files are
dealt round-robin to that many ``provwh load`` processes started together (each with the
CLI's default worker processes); the time is from their start to the last one's exit, data
lineage included (each derives its own). The database then must hold every task once: the
benchmark checks it. Loaders no longer take a lock (issue 13): what limits N loaders is the
machine, the PostgreSQL server's CPU above all; the figures show how far this machine goes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from load import _admin, _create_db, _db_url, _drop_db, generate  # noqa: E402


def _count(url: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*), count(DISTINCT task_id) FROM tasks").fetchone()


def run(admin_url: str, files: list[str], loaders: int) -> tuple[float, int]:
    """Seconds for ``loaders`` processes to load ``files``; the tasks stored."""
    name = _create_db(admin_url)
    url = _db_url(admin_url, name)
    try:
        # the schema first, so the loaders' start is not a race to create it
        subprocess.run(
            [sys.executable, "-m", "provwh.cli", "db", "upgrade", "--url", url],
            check=True,
            capture_output=True,
        )
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "provwh.cli", "load", "--postgres", url, *files[k::loaders]],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            for k in range(loaders)
        ]
        outs = [p.communicate()[0] for p in procs]
        seconds = time.perf_counter() - t0
        if any(p.returncode for p in procs):
            raise SystemExit(f"a loader failed:\n{''.join(outs)}")
        stored, distinct = _count(url)
        if stored != distinct:
            raise SystemExit(f"{stored - distinct} tasks stored twice")
        return seconds, stored
    finally:
        _drop_db(admin_url, name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200_000, help="tasks (default 200,000)")
    p.add_argument("--batch-size", type=int, default=1000, help="records per batch file")
    p.add_argument("--loaders", default="1,2", help="loader counts to compare (default 1,2)")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("PROVWH_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    args = p.parse_args()
    admin = _admin(args.postgres_url)
    counts = [int(c) for c in args.loaders.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="provwh-parallel-"))
    try:
        files = generate(workdir / "batches", args.n, args.batch_size)
        print(f"{args.n:,} tasks in {len(files):,} batches; {os.cpu_count()} cores\n")
        print(f"{'loaders':>8} {'seconds':>8} {'tasks/s':>9} {'vs 1 loader':>12}")
        base = None
        for k in counts:
            seconds, stored = run(admin, files, k)
            rate = stored / seconds
            base = base or rate
            print(f"{k:>8} {seconds:8.1f} {rate:9,.0f} {rate / base:11.2f}x")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
