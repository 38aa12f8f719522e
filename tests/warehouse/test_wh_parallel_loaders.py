"""Loaders writing one PostgreSQL database at the same time (issue 13): no loader lock, every
task once, the parts of one task that two loaders write at once merged, a loader killed
mid-batch redone without duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from warehouse_helpers import T0, query, wait_for, write_jsonl

import provwh

REPO = str(Path(provwh.__file__).resolve().parent.parent)

FILES, PER_FILE = 16, 400  # each task's start in file k, its end in file k + FILES // 2


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}
    env["PYTHONPATH"] = os.pathsep.join([REPO, env.get("PYTHONPATH", "")])
    return env


def _batches(folder: Path) -> list[str]:
    """Task ``t``'s first part (used, start) and its second (generated, end) in files half the
    set apart: one loader takes the first half, the other the second, in the same task order,
    so the two write parts of the same tasks at the same time."""
    folder.mkdir()
    half = FILES // 2
    paths = []
    for k in range(FILES):
        first = k < half
        base = (k % half) * PER_FILE
        recs = []
        for t in range(base, base + PER_FILE):
            rec = {"type": "task", "task_id": f"t{t}", "workflow_id": "wf", "activity_id": "a"}
            if first:
                rec.update(used={"x": t, "path": f"/in/{t}.csv"}, started_at=T0 + t)
            else:
                rec.update(generated={"y": -t}, ended_at=T0 + t + 1, status="FINISHED")
            recs.append(rec)
        paths.append(write_jsonl(folder / f"{k:03d}.jsonl", recs))
    return paths


def _load(pg_url: str, paths: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "provwh.cli", "-v", "load", "--postgres", pg_url]
    cmd += ["--workers", "0"]
    return subprocess.Popen(
        [*cmd, *paths], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _assert_every_task_once_and_whole(pg_url: str) -> None:
    n = FILES // 2 * PER_FILE
    assert query(pg_url, "SELECT count(*), count(DISTINCT task_id) FROM tasks") == [(n, n)]
    whole = (
        "SELECT count(*) FROM tasks WHERE started_at IS NOT NULL AND ended_at IS NOT NULL"
        " AND status = 'FINISHED' AND used IS NOT NULL AND generated IS NOT NULL"
    )
    assert query(pg_url, whole) == [(n,)]
    # used (x, path) and generated (y) rows, once each
    assert query(
        pg_url, "SELECT direction, count(*) FROM task_values GROUP BY direction ORDER BY 1"
    ) == [("generated", n), ("used", 2 * n)]
    assert query(pg_url, "SELECT count(*), count(DISTINCT batch_hash) FROM batches") == [
        (FILES, FILES)
    ]
    assert query(pg_url, "SELECT count(*) FROM rejects") == [(0,)]


def test_two_loaders_write_one_database_at_once(tmp_path, pg_url):
    paths = _batches(tmp_path / "b")
    half = FILES // 2
    libpq = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    stuck = (
        "SELECT count(*) FILTER (WHERE locktype = 'relation'),"
        " count(*) FILTER (WHERE locktype = 'transactionid')"
        " FROM pg_locks WHERE NOT granted"
        " AND (relation = 'batches'::regclass OR locktype = 'transactionid')"
    )
    # Their first batches hold the two parts of the same 400 tasks. A blocker lets both read
    # the ledger but not write it: the first to copy its tasks in then waits for the blocker
    # at its ledger row, the other waits for the first at those tasks' keys. Released, the
    # first commits and the other meets its keys (a unique violation), is retried, and merges.
    with psycopg.connect(libpq, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE batches IN SHARE MODE")
        procs = [_load(pg_url, paths[:half]), _load(pg_url, paths[half:])]
        assert wait_for(lambda: query(pg_url, stuck) == [(1, 1)], timeout=60)
        blocker.execute("ROLLBACK")
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum(out.count("met another writer") for out in outs) >= 1, outs  # they did meet
    _assert_every_task_once_and_whole(pg_url)
    assert query(pg_url, "SELECT count(*) FROM lineage_pending") == [(0,)]


def test_a_loader_killed_mid_batch_beside_another_redoes_its_files_once(tmp_path, pg_url):
    paths = _batches(tmp_path / "b")
    half = FILES // 2
    killed = _load(pg_url, paths[:half])
    other = _load(pg_url, paths[half:])
    try:
        # at the first batch committed, kill the first where it stands (waiting for more let
        # it finish all its files first once, its process having started before the other's)
        assert wait_for(lambda: query(pg_url, "SELECT count(*) FROM batches")[0][0] >= 1, 120)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        out = other.communicate(timeout=300)[0]
        assert other.returncode == 0, out
    finally:
        for p in (killed, other):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert killed.returncode == -signal.SIGKILL
    loaded = query(pg_url, "SELECT count(*) FROM batches")[0][0]
    assert FILES // 2 <= loaded < FILES  # the other's all, the killed one's not all
    again = _load(pg_url, paths[:half])  # the same command again
    out = again.communicate(timeout=300)[0]
    assert again.returncode == 0, out
    _assert_every_task_once_and_whole(pg_url)


def test_a_follower_never_passes_a_loader_transaction_still_open(tmp_path, pg_url):
    """A transaction stamps its rows when it first writes; another one that starts later may
    commit first. A follower reading in load order stops before the open one's start, then
    reads its rows once they commit: none is skipped, none sent twice."""
    import threading

    from provwh.query.api import DBAPI
    from provwh.warehouse.ingest import normalize_records, write
    from provwh.warehouse.loader import Loader
    from provwh.warehouse.pg import PgTarget

    def tasks(first: int) -> list[dict]:
        return [
            {"type": "task", "task_id": f"t{i}", "workflow_id": "wf", "started_at": T0 + i}
            for i in range(first, first + 3)
        ]

    db = DBAPI.from_postgres(pg_url)
    start = db.newest_load()
    wrote, release = threading.Event(), threading.Event()

    def slow_loader() -> None:
        target = PgTarget(pg_url)
        with target.transaction() as tx:  # stamps t0-t2, then stays open
            write(tx, normalize_records(tasks(0), "slow"), time.perf_counter())
            wrote.set()
            assert release.wait(60)
        target.close()

    slow = threading.Thread(target=slow_loader)
    slow.start()
    try:
        assert wrote.wait(60)
        fast = Loader([PgTarget(pg_url)], workers=0)
        fast.load_file(write_jsonl(tmp_path / "fast.jsonl", tasks(10)))  # t10-t12 commit first
        fast.close()
        assert db.loaded_after(start) == []  # the slow one is open: nothing past its start
    finally:
        release.set()
        slow.join(60)
    found = db.loaded_after(start)
    assert [rec["task_id"] for rec, _cursor in found] == ["t0", "t1", "t2", "t10", "t11", "t12"]
    assert db.loaded_after(found[-1][1]) == []
