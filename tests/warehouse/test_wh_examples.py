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


def test_flow_run_and_artifacts_land_in_the_warehouse(tmp_path, monkeypatch):
    """A recorded flow run is a workflow, its task calls tasks, its artifacts data objects."""
    from provwh import Flowcept
    from provwh.core import config
    from provwh.flows import flow, task

    monkeypatch.setenv("PROVWH_DUCKDB_PATH", str(tmp_path / "wh.duckdb"))
    config.reload_settings()

    @task
    def make_blob(n, this_flow):
        this_flow.add_flow_artifact("raw bytes", key="blob", data=b"\x00" * n, artifact_type="bin")
        return n

    @flow
    def pipeline(n):
        return make_blob(n)

    with Flowcept(workflow_name="session") as session:
        run = pipeline(5).execute()
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as db:
        workflows = db.execute(
            "SELECT name, status, parent_workflow_id FROM workflows WHERE workflow_id = ?",
            [run.flow_id],
        ).fetchall()
        tasks = db.execute(
            "SELECT activity_id, status FROM tasks WHERE workflow_id = ?", [run.flow_id]
        ).fetchall()
        objects = db.execute(
            "SELECT object_id, object_type, object_size_bytes, data_sha256 FROM data_objects"
        ).fetchall()
    import hashlib

    assert workflows == [("pipeline", "FINISHED", session.current_workflow_id)]
    assert tasks == [("make_blob", "FINISHED")]

    # ... and the run answers through Flowcept.db once it has ended
    (wf,) = Flowcept.db.workflow_query({"workflow_id": run.flow_id})
    assert (wf["name"], wf["status"], wf["parent_workflow_id"]) == (
        "pipeline",
        "FINISHED",
        session.current_workflow_id,
    )
    (t,) = Flowcept.db.task_query({"workflow_id": run.flow_id})
    assert (t["activity_id"], t["used"], t["generated"]) == ("make_blob", {"n": 5}, {"arg_0": 5})
    assert objects == [(f"{run.flow_id}:blob", "bin", 5, hashlib.sha256(b"\x00" * 5).hexdigest())]


def test_bi_example_sql_over_views(tmp_path):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "bi_sql.py")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert [line.split() for line in out.stdout.splitlines()] == [
        ["activity_id", "task_count", "finished_count"],
        ["extract", "3", "3"],
        ["transform", "3", "3"],
        ["task_count", "finished_count", "error_count"],
        ["6", "6", "0"],
        ["producer_activity_id", "consumer_activity_id", "links"],
        ["extract", "transform", "3"],
    ]
