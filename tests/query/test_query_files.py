"""DuckDB directly over batch files (JSONL, Parquet, Flowcept buffer dumps), no database."""

from __future__ import annotations

import argparse
import io
import json
import os

import pytest
from query_helpers import normalize, parity_batches, write_batches

from provwh.cli.sql import add as add_sql
from provwh.query.api import DBAPI
from provwh.query.guard import ReadOnlyError
from provwh.query.views import view_names


@pytest.fixture
def jsonl(tmp_path):
    return write_batches(tmp_path / "spool", parity_batches())


@pytest.fixture
def parquet(tmp_path):
    return write_batches(tmp_path / "pq", parity_batches(), fmt="parquet")


def test_parquet_and_jsonl_give_identical_views(jsonl, parquet):
    a, b = DBAPI.from_files(jsonl), DBAPI.from_files(parquet)
    for view in view_names():
        ra, rb = a.sql_rows(f"SELECT * FROM {view}"), b.sql_rows(f"SELECT * FROM {view}")
        assert normalize(*ra) == normalize(*rb), view
    assert a.task_query({"used.x": {"$gt": 3}}) == b.task_query({"used.x": {"$gt": 3}})
    assert [t["task_id"] for t in b.task_query({"used.x": {"$gt": 3}})] == ["a2", "d2", "r1"]


def test_paths_folders_and_globs(tmp_path, jsonl):
    folder = os.path.dirname(jsonl[0])
    by_folder = DBAPI.from_files(folder)
    by_glob = DBAPI.from_files(os.path.join(folder, "*.jsonl"))
    by_list = DBAPI.from_files(jsonl)
    counts = [len(d.task_query({})) for d in (by_folder, by_glob, by_list)]
    assert counts == [18, 18, 18]
    # the first two batches alone: the later parts of d3 and the workflows are not there
    part = DBAPI.from_files(jsonl[:2])
    assert [t["status"] for t in part.task_query({"task_id": "d3"})] == ["RUNNING"]
    with pytest.raises(FileNotFoundError, match="no file matches"):
        DBAPI.from_files(str(tmp_path / "none" / "*.jsonl"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        DBAPI.from_files(str(tmp_path / "missing.jsonl"))
    with pytest.raises(FileNotFoundError, match="no .jsonl or .parquet"):
        DBAPI.from_files(str(tmp_path))


def test_files_are_read_only(jsonl):
    db = DBAPI.from_files(jsonl)
    with pytest.raises(ReadOnlyError):
        db.insert_or_update_task({"task_id": "x"})
    with pytest.raises(ReadOnlyError):
        db.delete_workflow_data("wf-chain")
    with pytest.raises(ReadOnlyError):
        db.insert_or_update_object(b"x")
    with pytest.raises(ReadOnlyError):
        db.sql("DROP TABLE tasks")
    assert len(db.task_query({})) == 18
    for path in jsonl:  # the files are untouched
        assert os.path.exists(path)


def test_an_offline_run_is_queryable_in_place(set_env, tmp_path):
    from provwh import Flowcept, flowcept_task

    set_env(PROVWH_DB_FLUSH_MODE="offline")

    @flowcept_task(output_names="path")
    def fetch(i):
        return f"/data/part-{i}.csv"

    @flowcept_task(output_names="rows")
    def count_rows(csv_path, x):
        return 10 * x

    with Flowcept(workflow_name="offline"):
        for i in range(3):
            count_rows(fetch(i), i + 2)
    assert not os.path.exists("provwh.duckdb")  # no database at all
    db = DBAPI.from_files("flowcept_buffer.jsonl")
    big = db.task_query({"used.x": {"$gt": 3}}, projection=["used"])
    assert big == [{"used": {"csv_path": "/data/part-2.csv", "x": 4}}]
    [producer] = db.task_query({"generated.path": "/data/part-1.csv"})
    assert [d["activity_id"] for d in db.get_downstream(producer["task_id"])] == ["count_rows"]
    cost = db.sql("SELECT activity_id, task_count FROM v_activity_stats ORDER BY activity_id")
    assert cost.to_dict("records") == [
        {"activity_id": "count_rows", "task_count": 3},
        {"activity_id": "fetch", "task_count": 3},
    ]
    df = Flowcept.read_buffer_file("flowcept_buffer.jsonl", return_df=True)
    assert type(df).__module__.startswith("pandas") and len(df) == 7


def _run(argv, capsys):
    parser = argparse.ArgumentParser(prog="provwh")
    parser.add_argument("--settings")
    add_sql(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out = io.StringIO()
    assert args.func(args, out=out) == 0
    return out.getvalue()


def test_sql_command_over_files(jsonl, capsys):
    glob_ = os.path.join(os.path.dirname(jsonl[0]), "*.jsonl")
    query = (
        "SELECT activity_id, count(*) AS n, sum(duration_s) AS total FROM v_tasks"
        " WHERE workflow_id = 'wf-diamond' GROUP BY 1 ORDER BY 1"
    )
    out = _run(["sql", "--files", glob_, query], capsys)
    assert out == (
        "activity_id | n | total\n"
        "------------+---+------\n"
        "merge       | 1 |   1.0\n"
        "proc        | 2 |   3.0\n"
        "split       | 1 |   1.0\n"
        "split_part  | 1 |   0.5\n"
        "(4 rows)\n"
    )
    out = _run(["sql", "--files", glob_, "--csv", query], capsys)
    assert out.splitlines() == [
        "activity_id,n,total",
        "merge,1,1.0",
        "proc,2,3.0",
        "split,1,1.0",
        "split_part,1,0.5",
    ]
    out = _run(["sql", "--files", glob_, "--json", query + " LIMIT 1"], capsys)
    assert json.loads(out) == [{"activity_id": "merge", "n": 1, "total": 1.0}]
    out = _run(
        ["sql", "--files", jsonl[0], "--files", jsonl[1], "--param", "3",
         "SELECT task_id FROM v_task_io WHERE key_path = 'x' AND value_num > ? ORDER BY 1"],
        capsys,
    )  # fmt: skip
    assert out.splitlines()[2:] == ["a2", "d2", "(2 rows)"]


def test_a_spool_folder_after_its_batches_were_loaded(tmp_path):
    """The embedded default moves loaded batches to done/: the folder still answers for them,
    and `provwh sql --files` on it too (the README's offline query)."""
    from provwh import Flowcept, flowcept_task

    @flowcept_task(output_names="y")
    def double(x):
        return 2 * x

    with Flowcept(workflow_name="spooled"):
        for i in range(4):
            double(i)
    spool = tmp_path / ".provwh" / "spool"
    assert list(spool.glob("*.jsonl")) == [] and len(list((spool / "done").glob("*.jsonl"))) >= 1
    db = DBAPI.from_files(str(spool))
    assert sorted(t["generated"]["y"] for t in db.task_query({})) == [0, 2, 4, 6]
    assert [w["name"] for w in db.workflow_query({})] == ["spooled"]
