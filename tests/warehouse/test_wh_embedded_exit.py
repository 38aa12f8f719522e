"""The embedded default as a new user meets it: a big run, no settings, exit code 0 (issue 18).

Each script runs in a subprocess, in a fresh folder, five times in a row: the crash this guards
against depended on timing (which batch came last to a worker process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import orjson
import pytest
from warehouse_helpers import query

RUNS = 5

LOOP = textwrap.dedent(
    """
    import sys
    from provwh import Flowcept, flowcept_task

    @flowcept_task(output_names="y")
    def step(x, scale=2.0, name="a"):
        return x * scale

    n = int(sys.argv[1])
    with Flowcept(workflow_name="ux"):
        for i in range(n):
            step(i, name="n%d" % (i % 7))
    """
)

POOL = textwrap.dedent(
    """
    import sys
    from multiprocessing import Pool
    from provwh import Flowcept, flowcept_task

    @flowcept_task(output_names="y")
    def step(x, scale=2.0, name="a"):
        return x * scale

    if __name__ == "__main__":
        n = int(sys.argv[1])
        with Flowcept(workflow_name="ux"):
            with Pool(2) as pool:  # its exit terminates the workers (SIGTERM)
                for r in range(4):
                    pool.map(step, range(r * n, (r + 1) * n))
    """
)

CASES = {  # name: (script, argument, tasks expected)
    "loop": (LOOP, 100_000, 100_000),
    "pool": (POOL, 20_000, 80_000),
}


def _run(folder: Path, script: str, arg: int, env: dict[str, str]) -> subprocess.CompletedProcess:
    folder.mkdir()
    (folder / "s.py").write_text(script)
    return subprocess.run(
        [sys.executable, "s.py", str(arg)], cwd=folder, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


def _check_run(folder: Path, proc: subprocess.CompletedProcess, tasks: int) -> str:
    """Everything a user is owed after the run; returns the workflow id."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = (folder / "flowcept_buffer.jsonl").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines]
    workflows = [r for r in records if r["type"] == "workflow"]
    task_ids = {r["task_id"] for r in records if r["type"] == "task"}
    assert len(records) == tasks + 1 and len(task_ids) == tasks
    assert [(w["name"], w["status"]) for w in workflows] == [("ux", "FINISHED")]
    assert sorted(r["used"]["x"] for r in records if r["type"] == "task") == list(range(tasks))
    assert os.listdir(folder / ".provwh" / "spool" / "claimed") == []
    con = duckdb.connect(str(folder / "provwh.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT task_id) FROM tasks").fetchall() == [
            (tasks, tasks)
        ]
        assert con.execute("SELECT workflow_id, status FROM workflows").fetchall() == [
            (workflows[0]["workflow_id"], "FINISHED")
        ]
    finally:
        con.close()
    return workflows[0]["workflow_id"]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}


@pytest.mark.parametrize("case", sorted(CASES))
def test_embedded_default_exits_cleanly(tmp_path, case):
    script, arg, tasks = CASES[case]
    for i in range(RUNS):
        folder = tmp_path / f"run{i}"
        _check_run(folder, _run(folder, script, arg, _clean_env()), tasks)


@pytest.mark.parametrize("case", sorted(CASES))
def test_postgres_beside_duckdb_exits_cleanly(tmp_path, make_pg_url, case):
    script, arg, tasks = CASES[case]
    for i in range(RUNS):
        url = make_pg_url()
        folder = tmp_path / f"run{i}"
        env = {**_clean_env(), "PROVWH_POSTGRES_URL": url}
        wf = _check_run(folder, _run(folder, script, arg, env), tasks)
        assert query(url, "SELECT count(*), count(DISTINCT task_id) FROM tasks") == [(tasks, tasks)]
        assert query(url, "SELECT workflow_id, status FROM workflows") == [(wf, "FINISHED")]


def test_a_failing_load_at_stop_keeps_the_dump_and_the_batches(monkeypatch, caplog, capsys):
    """The loader refuses every batch at stop(): the run still ends normally, the dump is whole,
    one error line says where the batches are, and `provwh load` of that folder loads them."""
    from provwh import Flowcept, flowcept_task
    from provwh.cli import main
    from provwh.warehouse import ingest

    def refuse(tx, norm, started):
        raise RuntimeError("refused by the test")

    @flowcept_task(output_names="y")
    def step(x):
        return x + 1

    real_write = ingest.write
    monkeypatch.setattr(ingest, "write", refuse)
    monkeypatch.setenv("PROVWH_FLUSH_INTERVAL", "1000")  # nothing loads before stop()
    from provwh.core import config

    config.reload_settings()
    with caplog.at_level("ERROR", logger="provwh"):
        with Flowcept(workflow_name="refused") as f:
            for i in range(10):
                step(i)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    spool_dir = os.path.abspath(".provwh/spool")
    assert errors == [  # 10 tasks and the workflow record, written at start and at stop
        "provwh: loading this run's records failed (RuntimeError: refused by the test); "
        f"{spool_dir} holds 1 batch (12 records) of this run: load them later with "
        f"`provwh load {spool_dir}`"
    ]
    records = [orjson.loads(x) for x in Path("flowcept_buffer.jsonl").read_bytes().splitlines()]
    assert sorted(r["used"]["x"] for r in records if r["type"] == "task") == list(range(10))
    assert [r["status"] for r in records if r["type"] == "workflow"] == ["FINISHED"]

    monkeypatch.setattr(ingest, "write", real_write)  # (undo() would also undo the test's cwd)
    monkeypatch.delenv("PROVWH_FLUSH_INTERVAL")
    config.reload_settings()
    capsys.readouterr()
    assert Path.cwd() == Path(spool_dir).parent.parent  # still the test's own folder
    assert main(["load", spool_dir, "--duckdb", "provwh.duckdb"]) == 0
    assert capsys.readouterr().out.startswith("loaded 1 batch: ")
    assert query("provwh.duckdb", "SELECT count(*) FROM tasks") == [(10,)]
    assert query("provwh.duckdb", "SELECT workflow_id, status FROM workflows") == [
        (f.current_workflow_id, "FINISHED")
    ]
