"""Reading a DuckDB file this process is loading: queries run beside the loader's pass, on a
cursor of the open file, and see what it has committed, never what it has not."""

from __future__ import annotations

import threading
import time

from query_helpers import T0, load, write_batches

from provwh.query.api import DBAPI
from provwh.warehouse import duck


def _task(i: int) -> dict:
    return {"type": "task", "task_id": f"r{i}", "workflow_id": "wf-r", "status": "FINISHED",
            "used": {"i": i}, "started_at": T0 + i}  # fmt: skip


def test_a_query_runs_beside_a_loaders_open_transaction(tmp_path):
    path = str(tmp_path / "w.duckdb")
    load(duck.DuckTarget(path), write_batches(tmp_path / "spool", [[_task(i) for i in range(3)]]))
    db = DBAPI.from_duckdb(path)
    inserted, release, done = threading.Event(), threading.Event(), threading.Event()

    def loader() -> None:  # a pass in progress: the file's session held, a write not committed
        with duck.session(path) as conn, duck.transaction(conn):
            conn.execute("INSERT INTO tasks (task_id, workflow_id) VALUES ('r9', 'wf-r')")
            inserted.set()
            release.wait(30)
        done.set()

    thread = threading.Thread(target=loader)
    thread.start()
    try:
        assert inserted.wait(10)
        t0 = time.perf_counter()
        rows = db.task_query({"workflow_id": "wf-r"}, projection=["task_id"], sort=[("used.i", -1)])
        waited = time.perf_counter() - t0
        assert [r["task_id"] for r in rows] == ["r2", "r1", "r0"]  # r9 not committed: unseen
        assert waited < 5 and not done.is_set()  # it did not wait for the pass to end
        release.set()
        assert done.wait(10)
        rows = db.task_query({"workflow_id": "wf-r"}, projection=["task_id"])
        assert sorted(r["task_id"] for r in rows) == ["r0", "r1", "r2", "r9"]
    finally:
        release.set()
        thread.join()
        db.close()


def test_reading_a_file_not_open_here_gives_nothing(tmp_path):
    path = str(tmp_path / "w.duckdb")
    with duck.reading(path) as cur:
        assert cur is None
    with duck.session(path), duck.reading(path) as cur:
        assert cur.execute("SELECT count(*) FROM tasks").fetchone() == (0,)
    with duck.reading(path) as cur:  # closed with its last session
        assert cur is None
