"""Processes killed with SIGKILL: no flushed task is lost, none is duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from warehouse_helpers import count, query, task, wait_for

import provwh
from provwh.transport.spool import SpoolWriter

REPO = str(Path(provwh.__file__).resolve().parent.parent)
TESTS = str(Path(__file__).resolve().parent)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}
    env["PYTHONPATH"] = os.pathsep.join([REPO, TESTS, env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _consume_cmd(spool: Path, location: str, kind: str, *extra: str) -> list[str]:
    opt = ["--duckdb", location] if kind == "duckdb" else ["--postgres", location]
    return [
        sys.executable,
        "-m",
        "provwh.cli",
        "consume",
        "--spool",
        str(spool),
        "--poll",
        "0.05",
        *opt,
        *extra,
    ]


@pytest.fixture(params=["postgres", "duckdb"])
def location(request, tmp_path):
    if request.param == "duckdb":
        return "duckdb", str(tmp_path / "killed.duckdb")
    return "postgres", request.getfixturevalue("pg_url")


def test_consumer_killed_mid_batch_then_restarted_loads_every_task_once(tmp_path, location):
    kind, loc = location
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "big", "jsonl", fsync=False)
    n_batches, per_batch = 6, 1500
    for b in range(n_batches):
        writer.write([task(b * per_batch + i) for i in range(per_batch)])
    proc = subprocess.Popen(
        _consume_cmd(spool, loc, kind, "--group-records", "1"),  # a transaction per batch
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    claimed, done = spool / "claimed", spool / "done"
    # kill while a batch is claimed and at least one is already committed and moved
    try:
        assert wait_for(
            lambda: (
                claimed.is_dir()
                and done.is_dir()
                and len(os.listdir(done)) >= 1
                and len(os.listdir(claimed)) >= 1
            ),
            timeout=90,
            interval=0.005,
        ), proc.stdout.read().decode() if proc.poll() is not None else "no progress"
        time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    left, n_done = os.listdir(claimed), len(os.listdir(done))
    assert left and 1 <= n_done < n_batches  # killed with batches in flight
    restart = subprocess.run(
        _consume_cmd(spool, loc, kind, "--once"),
        env=_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert sorted(os.listdir(done)) == sorted(writer.names) and os.listdir(claimed) == []
    total = n_batches * per_batch
    assert count(loc, "tasks") == total
    assert count(loc, "task_values") == total * 6 and count(loc, "task_telemetry") == total * 2
    assert count(loc, "batches") == n_batches
    assert query(loc, "SELECT count(DISTINCT task_id) FROM task_values") == [(total,)]


PRODUCER = textwrap.dedent(
    """
    import os, sys
    from provwh.transport.spool import SpoolWriter
    from warehouse_helpers import task
    spool, run, start, batches, per_batch = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    writer = SpoolWriter(spool, run, "jsonl", fsync=True)
    for b in range(batches):
        first = start + b * per_batch
        writer.write([task(first + i, wf="wf-shared") for i in range(per_batch)])
    # die while writing one more batch: its temp file stays behind, half written
    with open(os.path.join(spool, f".9999999999999-{run}.jsonl.{os.getpid()}.tmp"), "wb") as fh:
        fh.write(b'{"type":"task","task_id":"never-')
        fh.flush()
        os.kill(os.getpid(), 9)
    """
)


def test_producers_killed_with_sigkill_lose_no_flushed_batch(tmp_path, pg_url):
    """The distributed setup: producers share a workflow id, one consumer loads them all."""
    spool = tmp_path / "spool"
    spool.mkdir()
    consumer = subprocess.Popen(
        _consume_cmd(spool, pg_url, "postgres"),
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    producers = [
        subprocess.Popen(
            [sys.executable, "-c", PRODUCER, str(spool), f"p{p}", str(p * 1000), "4", "50"],
            env=_env(),
            cwd=tmp_path,
        )
        for p in range(3)
    ]
    for p in producers:
        assert p.wait(timeout=60) == -signal.SIGKILL
    try:
        assert wait_for(lambda: count(pg_url, "batches") == 12, timeout=60)
    finally:
        consumer.send_signal(signal.SIGTERM)
        out = consumer.communicate(timeout=60)[0].decode()
    assert consumer.returncode == 0, out
    assert "loaded" in out.splitlines()[-1]
    assert count(pg_url, "tasks") == 600 and count(pg_url, "task_values") == 3600
    assert query(pg_url, "SELECT DISTINCT workflow_id FROM tasks") == [("wf-shared",)]
    assert query(pg_url, "SELECT count(*) FROM tasks WHERE task_id LIKE 'never%'") == [(0,)]
    assert len([n for n in os.listdir(spool) if n.endswith(".tmp")]) == 3  # never loaded
    assert count(pg_url, "rejects") == 0
