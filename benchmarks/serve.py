"""Serve benchmark: the calls a page makes, over HTTP, to ``provwh serve`` on DuckDB and PostgreSQL.

    python benchmarks/serve.py                  # one workflow of 100,000 tasks, both engines
    python benchmarks/serve.py --scale          # + 1,000,000 tasks in 100 workflows of 10,000
    python benchmarks/serve.py --quick          # one workflow of 10,000 tasks (smoke run)
    python benchmarks/serve.py --tasks 200000 --engines duckdb

The tasks are ``benchmarks/load.py``'s (4 used and 2 generated keys, each task using the
previous task's output file, so every task has data lineage upstream; telemetry at start and
end; ~2.4 KB each), written as batch files and loaded with the warehouse loader into a fresh
DuckDB file and a fresh PostgreSQL database (not timed here: see ``benchmarks/load.py``). Per
engine, the real server (``python -m provwh.cli serve --duckdb PATH | --postgres URL`` on a free
port) is started and each call below is timed over HTTP with httpx, ``--repeat`` times after
a warm-up, on a task and a workflow in the middle of the data:

- the task list (``GET /api/v1/tasks?workflow_id=W&limit=50``): first page, newest first
  (``sort=-started_at``), and a page in the middle of the workflow (``offset``);
- ``POST /api/v1/tasks/query``, filter ``{"workflow_id": W, "used.x": {"$gte": v}}`` (half the
  workflow's tasks), 50 sorted by ``started_at`` descending, and by ``used.x`` descending;
- one task, one workflow, ``/tasks/{id}/upstream?depth=3``, ``/stats/tasks/summary?workflow_id=W``;
- the HTML pages ``/workflows/W`` and ``/tasks/{id}``.

Then the task list's throughput with ``--clients`` concurrent clients (threads, one httpx
client each) for ``--duration`` seconds, and the baseline, in the same run and process:
Flowcept's approach to the list call, every task of the workflow read
(``DBAPI.task_query({"workflow_id": W})``, no limit), sorted in Python, cut to 50.

``--before CHECKOUT`` also times a server run from another checkout's ``provwh`` (its
folder first on ``PYTHONPATH``: e.g. ``git archive <commit> provwh | tar -x -C /tmp/before``)
on the same databases in the same run, before this checkout's, for before/after figures.

Needs a PostgreSQL server (``--postgres-url``, default ``$PROVWH_TEST_POSTGRES_URL`` or
postgres@127.0.0.1:5432) where databases can be created; each is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import _admin, _create_db, _db_url, _drop_db, _fresh_duckdb, generate  # noqa: E402
from query import load as load_into  # noqa: E402  (the loader, then the lineage; seconds)

RUN = "bench"  # task ids: bench-<i>
LIST_LIMIT = 50
TARGET_P95_MS = 100.0


# --- data ----------------------------------------------------------------------------------


# --- the server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m provwh.cli serve OPTIONS --port <free port>``, as tests/serve starts it."""

    def __init__(self, options: list[str], folder: Path, pythonpath: str | None = None) -> None:
        import httpx

        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"serve-{self.port}.log"
        cmd = [sys.executable, "-m", "provwh.cli", "serve", *options, "--port", str(self.port)]
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"provwh serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/api/v1/health/live").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"provwh serve did not answer in 60 s:\n{self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the calls -----------------------------------------------------------------------------


def calls(n: int, per_workflow: int) -> tuple[list[tuple[str, str, str, dict | None]], dict]:
    """(label, method, path, body) of each call a page makes, on the workflow in the middle
    of the data and a task in the middle of that workflow."""
    w = (n // per_workflow) // 2
    first = w * per_workflow
    size = min(per_workflow, n - first)
    wf = f"wf-{w:05d}" if per_workflow < n else "wf-bench"
    task = f"{RUN}-{first + size // 2}"
    v = first + size // 2  # used.x is the task's index: half the workflow's tasks match

    def query(field: str) -> dict:
        return {
            "filter": {"workflow_id": wf, "used.x": {"$gte": v}},
            "sort": [{"field": field, "order": -1}],
            "limit": LIST_LIMIT,
        }

    tasks = f"/api/v1/tasks?workflow_id={wf}&limit={LIST_LIMIT}"
    out = [
        ("task list, first page", "GET", tasks, None),
        ("task list, sort=-started_at", "GET", tasks + "&sort=-started_at", None),
        (f"task list, offset={size // 2:,}", "GET", tasks + f"&offset={size // 2}", None),
        ("query used.x>=v, -started_at", "POST", "/api/v1/tasks/query", query("started_at")),
        ("query used.x>=v, -used.x", "POST", "/api/v1/tasks/query", query("used.x")),
        ("one task", "GET", f"/api/v1/tasks/{task}", None),
        ("one workflow", "GET", f"/api/v1/workflows/{wf}", None),
        ("upstream, depth 3", "GET", f"/api/v1/tasks/{task}/upstream?depth=3", None),
        ("summary of the workflow", "GET", f"/api/v1/stats/tasks/summary?workflow_id={wf}", None),
        ("page /workflows/W", "GET", f"/workflows/{wf}", None),
        ("page /tasks/T", "GET", f"/tasks/{task}", None),
    ]
    return out, {"workflow_id": wf, "task_id": task, "workflow_tasks": size, "v": v}


def check(label: str, resp, ctx: dict) -> None:
    if resp.status_code != 200:
        raise SystemExit(f"{label}: HTTP {resp.status_code}: {resp.text[:500]}")
    if resp.headers.get("content-type", "").startswith("application/json"):
        body = resp.json()
        if label.startswith(("task list", "query")) and body.get("count") != LIST_LIMIT:
            raise SystemExit(f"{label}: {body.get('count')} items, expected {LIST_LIMIT}")
        if label.startswith("upstream") and body.get("count") != 3:
            raise SystemExit(f"{label}: {body.get('count')} tasks upstream, expected 3")
        if label.startswith("summary") and body.get("count") != ctx["workflow_tasks"]:
            raise SystemExit(f"{label}: count {body.get('count')}, expected the workflow's")


def time_calls(url: str, plan: list, ctx: dict, repeat: int) -> list[tuple[str, list[float]]]:
    import httpx

    out = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for label, method, path, body in plan:
            resp = client.request(method, path, json=body)  # warm-up, and the answer checked
            check(label, resp, ctx)
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                resp = client.request(method, path, json=body)
                times.append((time.perf_counter() - t0) * 1000)
                if resp.status_code != 200:
                    raise SystemExit(f"{label}: HTTP {resp.status_code}: {resp.text[:500]}")
            out.append((label, times))
    return out


def throughput(url: str, path: str, clients: int, duration: float) -> tuple[float, list[float]]:
    """Requests/s of ``GET path`` from ``clients`` threads for ``duration`` s, and the
    latencies (ms)."""
    import httpx

    stop = threading.Event()
    done: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            c.get(path)  # its connection
            start.wait()
            while not stop.is_set():
                t0 = time.perf_counter()
                resp = c.get(path)
                if resp.status_code != 200:
                    errors.append(f"HTTP {resp.status_code}: {resp.text[:200]}")
                    return
                done[k].append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"throughput: {errors[0]}")
    lat = [x for d in done for x in d]
    return len(lat) / seconds, lat


def flowcept_list(db, workflow_id: str) -> list[dict]:
    """Flowcept's list call: every matching task read, sorted in Python, the first 50."""
    found = db.task_query({"workflow_id": workflow_id})
    found.sort(key=lambda t: (t.get("started_at") is None, t.get("started_at") or 0))
    return found[:LIST_LIMIT]


def time_baseline(db, workflow_id: str, repeat: int) -> list[float]:
    flowcept_list(db, workflow_id)  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        got = flowcept_list(db, workflow_id)
        times.append((time.perf_counter() - t0) * 1000)
        assert len(got) == LIST_LIMIT, len(got)
    return times


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


# --- one engine ----------------------------------------------------------------------------


def bench_engine(engine: str, options: list[str], db, args, n: int, per_workflow: int, work: Path):
    plan, ctx = calls(n, per_workflow)
    variants = [("before", args.before), ("now", None)] if args.before else [("now", None)]
    results = []
    for label, pythonpath in variants:
        server = Server(options, work, pythonpath)
        try:
            timed = time_calls(server.url, plan, ctx, args.repeat)
            list_path = plan[0][2]
            rps, lat = throughput(server.url, list_path, args.clients, args.duration)
        finally:
            server.stop()
        results.append((label, timed, rps, lat))
    base = time_baseline(db, ctx["workflow_id"], args.baseline_repeat)
    for label, timed, rps, lat in results:
        which = f" [{label}: {args.before}]" if label == "before" else ""
        print(f"\n{engine}{which}: workflow {ctx['workflow_id']} ({ctx['workflow_tasks']:,} tasks),"
              f" task {ctx['task_id']}; {args.repeat} calls each, warm")  # fmt: skip
        print(f"  {'call':<32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for call, times in timed:
            p95 = pct(times, 0.95)
            miss = "" if p95 <= TARGET_P95_MS else f"   > {TARGET_P95_MS:.0f} ms"
            print(f"  {call:<32} {pct(times, 0.5):8.1f} {p95:8.1f} {max(times):8.1f}{miss}")
        print(f"  {'baseline: read all, sort, cut':<32} {pct(base, 0.5):8.1f}"
              f" {pct(base, 0.95):8.1f} {max(base):8.1f}"
              f"   (in process, {args.baseline_repeat} runs)")  # fmt: skip
        list_p50 = pct(timed[0][1], 0.5)
        print(f"  list endpoint p50 / baseline p50: {list_p50 / pct(base, 0.5):.4f}"
              f" ({pct(base, 0.5) / list_p50:,.0f}x faster)")  # fmt: skip
        print(
            f"  task list throughput, {args.clients} clients, {args.duration:.0f} s:"
            f" {rps:,.1f} requests/s (p50 {pct(lat, 0.5):.1f} ms, p95 {pct(lat, 0.95):.1f} ms)"
        )
    sys.stdout.flush()
    return {"results": results, "baseline": base}


def run_case(args, n: int, per_workflow: int, engines: list[str], work: Path) -> None:
    from provwh.query.api import DBAPI

    t0 = time.perf_counter()
    one = per_workflow >= n
    files = generate(work / "batches", n, args.batch_size, None if one else per_workflow, RUN)
    shape = "one workflow" if one else f"{n // per_workflow} workflows of {per_workflow:,}"
    print(f"\n== {n:,} tasks in {shape}: {len(files)} batch files written"
          f" in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    sys.stdout.flush()
    try:
        if "duckdb" in engines:
            from provwh.warehouse.duck import DuckTarget

            path = _fresh_duckdb(str(work), "serve.duckdb")
            print(f"DuckDB: loaded in {load_into(DuckTarget(path), files):.1f} s")
            db = DBAPI.from_duckdb(path)
            try:
                bench_engine("DuckDB", ["--duckdb", path], db, args, n, per_workflow, work)
            finally:
                db.close()
            os.remove(path)
        if "postgres" in engines:
            from provwh.warehouse.pg import PgTarget

            name = _create_db(args.postgres_url)
            url = _db_url(args.postgres_url, name)
            try:
                target = PgTarget(url)
                print(f"PostgreSQL: loaded in {load_into(target, files):.1f} s")
                target.close()
                db = DBAPI.from_postgres(url)
                try:
                    bench_engine("PostgreSQL", ["--postgres", url], db, args, n, per_workflow, work)
                finally:
                    db.close()
            finally:
                _drop_db(args.postgres_url, name)
    finally:
        shutil.rmtree(work / "batches", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000, help="one workflow of N tasks")
    ap.add_argument("--scale", action="store_true", help="also 1,000,000 tasks in 100 workflows")
    ap.add_argument("--scale-tasks", type=int, default=1_000_000)
    ap.add_argument("--per-workflow", type=int, default=10_000, help="for --scale")
    ap.add_argument("--only-scale", action="store_true", help="the --scale case alone")
    ap.add_argument("--quick", action="store_true", help="one workflow of 10,000 tasks")
    ap.add_argument("--engines", default="duckdb,postgres")
    ap.add_argument("--repeat", type=int, default=50, help="timed calls of each (default 50)")
    ap.add_argument("--baseline-repeat", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of the throughput run")
    ap.add_argument("--batch-size", type=int, default=5000, help="records per batch file")
    ap.add_argument(
        "--postgres-url",
        default=os.environ.get("PROVWH_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    ap.add_argument("--workdir", help="where batches and the DuckDB file go (default: temporary)")
    ap.add_argument(
        "--before",
        metavar="CHECKOUT",
        help="also time a server run from this folder's provwh package, first (PYTHONPATH)",
    )
    args = ap.parse_args(argv)
    args.postgres_url = _admin(args.postgres_url)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    cases = []
    if not args.only_scale:
        n = 10_000 if args.quick else args.tasks
        cases.append((n, n))
    if args.scale or args.only_scale:
        cases.append((args.scale_tasks, args.per_workflow))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="provwh-servebench-"))
    print(f"provwh serve benchmark ({', '.join(engines)}); p95 target {TARGET_P95_MS:.0f} ms;"
          f" {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs")  # fmt: skip
    try:
        for n, per_workflow in cases:
            run_case(args, n, per_workflow, engines, work)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
