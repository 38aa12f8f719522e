"""The distributed and offline examples run as documented, against real databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import psycopg
from warehouse_helpers import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}
    env.update(extra)
    return env


def test_distributed_producers_and_one_persistence_process(tmp_path, pg_url):
    spool = tmp_path / "shared-spool"
    env = _env(
        PROVWH_POSTGRES_URL=pg_url,
        PROVWH_DUCKDB_ENABLED="false",
        PROVWH_SPOOL_DIR=str(spool),
        PROVWH_DUMP_BUFFER_ENABLED="false",
    )
    starter = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "distributed" / "persistence_starter.py")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: (tmp_path / "workflow_id.txt").exists(), timeout=60)
        assert "persistence started" in starter.stdout.readline()
        workflow_id = (tmp_path / "workflow_id.txt").read_text()
        for _ in range(3):
            out = subprocess.run(
                [
                    sys.executable,
                    str(EXAMPLES / "distributed" / "distributed_tasks.py"),
                    workflow_id,
                ],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert out.returncode == 0, out.stderr
            assert out.stdout == "Result: 42\n"
    finally:
        starter.send_signal(signal.SIGTERM)
        assert starter.wait(timeout=120) == 0
    assert starter.stdout.read() == "persistence stopped\n"

    url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        tasks = conn.execute(
            "SELECT activity_id, status, count(*) FROM tasks WHERE workflow_id = %s "
            "GROUP BY activity_id, status",
            (workflow_id,),
        ).fetchall()
        workflows = conn.execute(
            "SELECT name, status FROM workflows WHERE workflow_id = %s", (workflow_id,)
        ).fetchall()
    assert tasks == [("double", "FINISHED", 3)]
    assert workflows == [("distributed_process_example", "FINISHED")]


def test_offline_then_load(tmp_path):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "offline_then_load.py")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "captured: 4 messages"
    assert not (tmp_path / ".provwh" / "spool").exists() or not any(
        p.is_file() for p in (tmp_path / ".provwh" / "spool").iterdir()
    )
    with duckdb.connect(str(tmp_path / "provwh.duckdb"), read_only=True) as db:
        rows = db.execute("SELECT activity_id, count(*) FROM tasks GROUP BY activity_id").fetchall()
        names = db.execute("SELECT name, status FROM workflows").fetchall()
    assert rows == [("area", 3)]
    assert names == [("offline_run", "FINISHED")]
