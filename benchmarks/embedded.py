"""Embedded default benchmark (issue 13 items 3 and 4): what persistence costs the user's program.

    python benchmarks/embedded.py                  # 100,000 tasks, DuckDB and PostgreSQL, 3 runs
    python benchmarks/embedded.py --quick          # 20,000 tasks, 1 run (smoke)
    python benchmarks/embedded.py --engines duckdb --tasks 200000
    python benchmarks/embedded.py --fresh-only     # the freshness case alone

Each run is a fresh process in a fresh folder, with no provwh settings but the engine's:

- **loop**: ``N`` calls of a ``@flowcept_task`` function inside ``with Flowcept(...)``; timed
  are the start (entering the block), the loop (the calls) and ``stop()`` (the last call to
  leaving the block: what the user waits for at the end), and the process's CPU. The
  baseline, in the same run and interleaved: the same script in offline mode
  (``PROVWH_DB_FLUSH_MODE=offline``, no database, the dump only), then the loop's cost ratio
  embedded / offline. Targets: loop
  ≤ 1.15x offline, ``stop()`` ≤ 2 s after 100,000 tasks. Every run checks that the database
  holds all ``N`` tasks once.
- **fresh**: tasks captured at a steady ``--rate`` (default 10,000/s: a call, then a sleep to
  keep the pace) for ``--seconds``; a thread of the same process asks ``Flowcept.db`` every
  0.1 s for the newest task loaded. A task's lag runs from its call's return to the first
  answer that holds it (tasks load in order: an answer holds its newest task and those
  before). Printed: the lags' median, p95 and maximum over every task. Target: ≤ 1 s.

DuckDB is the embedded default (``provwh.duckdb`` in the folder); PostgreSQL is a fresh database
(``--postgres-url``, default ``$PROVWH_TEST_POSTGRES_URL`` or postgres@127.0.0.1:5432) with the
DuckDB file off, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

LOOP = textwrap.dedent(
    """
    import json, resource, sys, time
    from provwh import Flowcept, flowcept_task

    @flowcept_task(output_names="y")
    def step(x, scale=2.0):
        return x * scale

    n = int(sys.argv[1])
    t0 = time.perf_counter()
    with Flowcept(workflow_name="embedded"):
        t1 = time.perf_counter()
        for i in range(n):
            step(i)
        t2 = time.perf_counter()
    t3 = time.perf_counter()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"start": t1 - t0, "loop": t2 - t1, "stop": t3 - t2,
                      "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024}))
    """
)

FRESH = textwrap.dedent(
    """
    import json, sys, threading, time
    from provwh import Flowcept, flowcept_task

    @flowcept_task
    def step(x):
        return x

    rate, seconds = float(sys.argv[1]), float(sys.argv[2])
    finished = []  # [i]: when task i's call returned
    seen, stop = [], threading.Event()  # (when Flowcept.db answered, the newest task in it)

    def poll():
        while not stop.wait(0.1):
            try:
                rows = Flowcept.db.task_query({}, projection=["used"],
                                              sort=[("started_at", -1)], limit=1)
            except Exception as exc:  # the file may be busy: counted as no answer
                print(json.dumps({"error": repr(exc)}), file=sys.stderr)
                continue
            if rows:
                seen.append((time.perf_counter(), rows[0]["used"]["x"]))

    with Flowcept(workflow_name="fresh"):
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        t0 = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) - t0 < seconds:
            due = int((now - t0) * rate)
            while n < due:
                step(n)
                finished.append(time.perf_counter())
                n += 1
            time.sleep(0.005)
        time.sleep(2)  # the lag of the last tasks too
        stop.set()
        poller.join()
    print(json.dumps({"tasks": n, "finished": finished, "seen": seen}))
    """
)


# settings given with ``--env NAME=VALUE``, for every run (the offline baseline's too)
EXTRA_ENV: dict[str, str] = {}


def _env(engine: str, url: str | None, offline: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}
    env.update(EXTRA_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    if offline:
        env.update(PROVWH_DB_FLUSH_MODE="offline", PROVWH_DUCKDB_ENABLED="false")
    elif engine == "postgres":
        env.update(PROVWH_POSTGRES_URL=url or "", PROVWH_DUCKDB_ENABLED="false")
    return env


def _run(script: str, args: list[str], env: dict[str, str]) -> tuple[dict, Path]:
    folder = Path(tempfile.mkdtemp(prefix="provwh-embedded-"))
    (folder / "s.py").write_text(script)
    out = subprocess.run(
        [sys.executable, "s.py", *args], cwd=folder, env=env, capture_output=True, text=True,
        timeout=1800,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"run failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), folder


def _count(engine: str, folder: Path, url: str | None) -> tuple[int, int]:
    sql = "SELECT count(*), count(DISTINCT task_id) FROM tasks"
    if engine == "duckdb":
        import duckdb

        with duckdb.connect(str(folder / "provwh.duckdb"), read_only=True) as con:
            return con.execute(sql).fetchone()
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as con:
        return con.execute(sql).fetchone()


class Databases:
    """Fresh PostgreSQL databases, dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url, self.names = admin_url, []

    def new(self) -> str:
        import psycopg

        name = f"provwh_emb_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_url, autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        self.names.append(name)
        return self.admin_url.rpartition("/")[0] + "/" + name

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as con:
            for name in self.names:
                con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def loop_case(engine: str, n: int, runs: int, dbs: Databases) -> None:
    emb, off = [], []
    for _ in range(runs):  # interleaved: offline, then embedded
        r, folder = _run(LOOP, [str(n)], _env(engine, None, offline=True))
        off.append(r)
        shutil.rmtree(folder)
        url = dbs.new() if engine == "postgres" else None
        r, folder = _run(LOOP, [str(n)], _env(engine, url))
        got = _count(engine, folder, url)
        if got != (n, n):
            raise SystemExit(f"{engine}: the database holds {got} (count, distinct) for {n}")
        emb.append(r)
        shutil.rmtree(folder)

    def med(rs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rs)

    def span(rs: list[dict], key: str) -> str:
        return f"{min(r[key] for r in rs):5.2f}–{max(r[key] for r in rs):5.2f}"

    print(f"\n== {engine}: {n:,} @flowcept_task calls, {runs} run(s) each, interleaved")
    print(f"  {'':22} {'start s':>13} {'loop s':>13} {'stop() s':>13} {'CPU s':>13} "
          f"{'peak RSS MB':>12}")  # fmt: skip
    for label, rs in (("offline (baseline)", off), ("embedded, " + engine, emb)):
        cells = " ".join(f"{span(rs, key):>13}" for key in ("start", "loop", "stop", "cpu"))
        print(f"  {label:22} {cells} {med(rs, 'rss_mb'):12.0f}")
    ratio = med(emb, "loop") / med(off, "loop")
    stop = med(emb, "stop")
    print(f"  loop cost embedded / offline: {ratio:.2f}x (target <= 1.15x); "
          f"stop() wait {stop:.2f} s (target <= 2 s); all {n:,} tasks loaded once")  # fmt: skip


def fresh_case(engine: str, rate: float, seconds: float, dbs: Databases) -> None:
    url = dbs.new() if engine == "postgres" else None
    r, folder = _run(FRESH, [str(rate), str(seconds)], _env(engine, url))
    shutil.rmtree(folder)
    lags, unseen = visibility_lags(r["finished"], r["seen"])
    if not lags:
        raise SystemExit(f"{engine}: Flowcept.db answered nothing while tasks were captured")
    p95 = lags[max(0, int(len(lags) * 0.95) - 1)]
    print(f"\n== {engine}: freshness at {rate:,.0f} tasks/s for {seconds:.0f} s "
          f"({r['tasks']:,} tasks, {len(r['seen'])} answers)")  # fmt: skip
    print(f"  from a task's return to the first answer holding it: median "
          f"{statistics.median(lags):.2f} s, p95 {p95:.2f} s, max {lags[-1]:.2f} s"
          f" (target <= 1 s); never seen: {unseen:,}")  # fmt: skip


def visibility_lags(finished: list[float], seen: list[list]) -> tuple[list[float], int]:
    """Per task, sorted: how long after its call returned the first answer held it (the
    newest task an answer finds and every task before it: tasks load in order); and how many
    no answer held. Answers are 0.1 s apart, so a lag includes up to 0.1 s of polling."""
    lags: list[float] = []
    newest, k = -1, 0
    answers = sorted(seen)
    for i, done in enumerate(finished):
        while newest < i and k < len(answers):
            newest = max(newest, answers[k][1])
            k += 1
        if newest < i:
            return sorted(lags), len(finished) - i
        lags.append(max(0.0, answers[k - 1][0] - done))
    return sorted(lags), 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--engines", default="duckdb,postgres")
    p.add_argument("--rate", type=float, default=10_000.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--fresh-only", action="store_true", help="the freshness case alone")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("PROVWH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )  # fmt: skip
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every run, e.g. PROVWH_FLUSH_SIZE=1000 (repeatable)",
    )
    args = p.parse_args()
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            p.error(f"--env wants NAME=VALUE, got {item!r}")
        EXTRA_ENV[name] = value
    if args.quick:
        args.tasks, args.runs, args.seconds = 20_000, 1, 5.0
    given = "".join(f", {k}={v}" for k, v in EXTRA_ENV.items())
    print(f"provwh embedded default benchmark; {os.cpu_count()} CPUs{given}")
    dbs = Databases(args.postgres_url.replace("+psycopg", ""))
    try:
        for engine in args.engines.split(","):
            if not args.fresh_only:
                loop_case(engine, args.tasks, args.runs, dbs)
            fresh_case(engine, args.rate, args.seconds, dbs)
    finally:
        if dbs.names:
            dbs.drop()


if __name__ == "__main__":
    main()
