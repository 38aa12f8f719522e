"""The server's hold on its database: on DuckDB the file stays open while requests keep coming
and is let go when they stop, when a provwh process waits for it (a page that polls cannot
starve a loader), and now and then for other programs; requests run concurrently and answer
as they do one at a time, on both engines (PostgreSQL: a connection per request in progress).
Real servers, real databases, other processes as writers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from query_helpers import write_batches

ENGINES = ("duckdb", "postgres")

# a writer in another process: DuckDB's own connect, read-write, refused while another
# process has the file open (no provwh: it says nothing, it only fails)
OPEN_RW = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS outside_writer (x INTEGER)")
conn.execute("INSERT INTO outside_writer VALUES (1)")
conn.close()
print("wrote")
"""

# the same, trying again every 50 ms for ``argv[2]`` seconds
OPEN_RW_RETRYING = """
import sys, time, duckdb
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        conn = duckdb.connect(sys.argv[1])
        break
    except duckdb.IOException:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
conn.execute("CREATE TABLE IF NOT EXISTS outside_writer (x INTEGER)")
conn.close()
print("wrote")
"""

CALLS = [
    "/api/v1/tasks?limit=5",
    "/api/v1/tasks?workflow_id=wf-chain&sort=-started_at",
    "/api/v1/tasks/a2",
    "/api/v1/tasks/d4/upstream?depth=3",
    "/api/v1/workflows/wf-diamond",
    "/api/v1/stats/tasks/summary?workflow_id=wf-misc",
    "/workflows/wf-chain",
    "/tasks/c3",
]


def _writer(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout
    )


@contextlib.contextmanager
def _polling(
    url: str, path: str, params: dict | None = None, threads: int = 1, pause: float = 0.0
) -> Iterator[list[int]]:
    """``threads`` clients asking ``GET path`` over and over (``pause`` s apart) while the
    block runs; the status codes they got."""
    import httpx

    stop = threading.Event()
    codes: list[int] = []

    def poll() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                codes.append(client.get(path, params=params).status_code)
                time.sleep(pause)

    pollers = [threading.Thread(target=poll) for _ in range(threads)]
    for t in pollers:
        t.start()
    try:
        yield codes
    finally:
        stop.set()
        for t in pollers:
            t.join()


def _body(resp):
    assert resp.status_code == 200, resp.text
    return resp.json() if resp.headers["content-type"].startswith("application/json") else None


@pytest.mark.parametrize("engine", ENGINES)
def test_concurrent_requests_answer_as_serial_ones(database, start_server, engine):
    s = start_server(database(engine))
    expected = {path: _body(s.get(path)) for path in CALLS}
    # a task query sorted by a used value: the join per sort key, concurrently
    query = {"filter": {"used.x": {"$exists": True}}, "sort": [{"field": "used.x", "order": -1}]}
    expected_query = s.post("/api/v1/tasks/query", json=query).json()
    assert [t["task_id"] for t in expected_query["items"]][:3] == ["r1", "d2", "a2"]

    def one(i: int) -> None:
        import httpx

        with httpx.Client(base_url=s.url, timeout=60) as client:
            for k in range(12):
                path = CALLS[(i + k) % len(CALLS)]
                assert _body(client.get(path)) == expected[path], path
                if k % 4 == 0:
                    assert client.post("/api/v1/tasks/query", json=query).json() == expected_query

    with ThreadPoolExecutor(8) as pool:
        for f in [pool.submit(one, i) for i in range(8)]:
            f.result()


def test_duckdb_file_is_let_go_when_idle(database, start_server):
    options = database("duckdb")
    path = options[1]
    s = start_server(options, "--idle-release", "0.5")
    assert s.get("/api/v1/tasks/a2").status_code == 200
    # held while requests come: another process cannot open it
    held = _writer(OPEN_RW, path)
    assert held.returncode != 0 and "lock" in held.stderr.lower(), held.stderr
    time.sleep(1.5)  # idle: let go
    done = _writer(OPEN_RW, path)
    assert done.returncode == 0 and "wrote" in done.stdout, done.stderr
    # and requests answer after the release, the file opened again
    assert s.get("/api/v1/tasks/a2").json()["task_id"] == "a2"
    assert s.get("/api/v1/tasks", params={"limit": 100}).json()["count"] == 18


def test_a_polling_page_does_not_starve_a_provwh_loader(database, start_server, tmp_path):
    """A page polling several times a second never leaves the server idle; a loader (``provwh
    load``, another process) that finds the file locked says so, and the server lets it go."""
    options = database("duckdb")
    path = options[1]
    s = start_server(options, "--idle-release", "60", "--max-hold", "0")
    with _polling(s.url, "/api/v1/tasks", {"limit": 5}, threads=2, pause=0.05) as answers:
        time.sleep(0.5)
        batch = write_batches(
            tmp_path / "new",
            [[{"type": "task", "task_id": "late-1", "workflow_id": "wf-late", "status": "OK"}]],
        )
        t0 = time.monotonic()
        load = subprocess.run(
            [sys.executable, "-m", "provwh.cli", "load", "--duckdb", path, *batch,
             "--retry-timeout", "30"],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        took = time.monotonic() - t0
        assert load.returncode == 0, load.stdout + load.stderr
        assert took < 15, (took, load.stderr)
        time.sleep(0.5)
    assert answers and set(answers) == {200}, set(answers)
    # the loaded task is served once the server has the file again
    assert s.get("/api/v1/tasks/late-1").json()["workflow_id"] == "wf-late"
    # the note is gone once its writer opened the file (each removes its own, so a try's note
    # written while another process had the file waits for that writer's next open)
    note = path + ".waiting"
    deadline = time.monotonic() + 5
    while os.path.exists(note) and time.monotonic() < deadline:
        s.get("/api/v1/tasks", params={"limit": 1})
        time.sleep(0.2)
    left = Path(note).read_text() if os.path.exists(note) else None
    assert left is None, (left, "server", s.proc.pid, "loader", load.stderr[-500:])


def test_a_busy_server_pauses_for_other_programs(database, start_server):
    """``--max-hold``: held that long, the file is closed for a moment even while requests
    keep coming, so a program outside provwh that retries gets it."""
    options = database("duckdb")
    path = options[1]
    s = start_server(options, "--idle-release", "60", "--max-hold", "1")
    with _polling(s.url, "/api/v1/workflows/wf-chain") as codes:
        time.sleep(0.3)
        done = _writer(OPEN_RW_RETRYING, path, "20")
    assert done.returncode == 0 and "wrote" in done.stdout, done.stderr
    assert codes and set(codes) == {200}, set(codes)
    assert s.get("/api/v1/workflows/wf-chain").status_code == 200
