"""The DB API beyond reads: upserts, deletes, data objects, exports, settings, real captures."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import pyarrow.parquet as pq
import pytest
from query_helpers import MODEL_V1, T0, parity_batches, write_batches

from provwh.core.model import Status, TaskObject, WorkflowObject
from provwh.query.api import DBAPI, get_db, records_for
from provwh.query.guard import ReadOnlyError

ENGINES = ("duckdb", "postgres")


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


@pytest.fixture
def loaded(engine, make_db, tmp_path):
    return make_db(engine, write_batches(tmp_path / "spool", parity_batches()))


@pytest.fixture
def empty(engine, make_db):
    return make_db(engine)


def ids(records):
    return sorted(r["task_id"] for r in records)


# --- summaries -------------------------------------------------------------------------------


def test_task_summary_of_a_workflow(empty):
    db = empty
    for task_id, wf, activity, status, start, end in [
        ("a1", "wf-a", "prep", "FINISHED", 0, 2),
        ("a2", "wf-a", "train", "FINISHED", 2, 5),
        ("a3", "wf-a", "train", "ERROR", 5, 6),
        ("b1", "wf-b", "train", "FINISHED", 0, 10),
    ]:
        db.insert_or_update_task(
            {"task_id": task_id, "workflow_id": wf, "activity_id": activity, "status": status,
             "started_at": T0 + start, "ended_at": T0 + end}
        )  # fmt: skip
    expected = {
        "count": 3,
        "status_counts": {"FINISHED": 2, "ERROR": 1},
        "activity_stats": [
            {
                "activity_id": "prep",
                "count": 1,
                "status_counts": {"FINISHED": 1},
                "avg_duration": 2.0,
                "min_duration": 2.0,
                "max_duration": 2.0,
                "sum_duration": 2.0,
            },
            {
                "activity_id": "train",
                "count": 2,
                "status_counts": {"FINISHED": 1, "ERROR": 1},
                "avg_duration": 2.0,
                "min_duration": 1.0,
                "max_duration": 3.0,
                "sum_duration": 4.0,
            },
        ],  # fmt: skip
        "time_range": {"min_started_at": T0, "max_ended_at": T0 + 6},
    }
    assert db.task_summary(workflow_id="wf-a") == expected
    assert db.task_summary({"workflow_id": "wf-a"}) == expected
    # both: the workflow's tasks that match the filter
    train = db.task_summary({"activity_id": "train"}, workflow_id="wf-a")
    assert train["count"] == 2 and train["status_counts"] == {"FINISHED": 1, "ERROR": 1}
    assert train["time_range"] == {"min_started_at": T0 + 2, "max_ended_at": T0 + 6}
    assert db.task_summary(workflow_id="wf-none")["count"] == 0
    assert db.task_summary()["count"] == 4


# --- upserts ---------------------------------------------------------------------------------


def test_insert_or_update_task_is_an_upsert(empty):
    db = empty
    t = TaskObject(task_id="p1", activity_id="make", used={"x": 4}, started_at=T0, ended_at=T0 + 1)
    assert db.insert_or_update_task(t) == "p1"
    assert db.insert_or_update_task({"task_id": "c1", "used": {"file": "/out/model.bin"}}) == "c1"
    [p1] = db.task_query({"task_id": "p1"})
    assert p1["used"] == {"x": 4} and "status" not in p1
    # an update merges: later non-null fields win, nested dicts merge, the rest stays
    db.insert_or_update_task(
        {"task_id": "p1", "status": Status.FINISHED, "generated": {"file": "/out/model.bin"}}
    )
    db.insert_or_update_task(
        TaskObject(task_id="c1", started_at=T0 + 2, ended_at=T0 + 3, used={"y": 1})
    )
    [p1] = db.task_query({"task_id": "p1"})
    assert p1 == {
        "type": "task",
        "task_id": "p1",
        "activity_id": "make",
        "status": "FINISHED",
        "started_at": T0,
        "ended_at": T0 + 1,
        "used": {"x": 4},
        "generated": {"file": "/out/model.bin"},
    }
    assert db.task_query({"task_id": "c1"})[0]["used"] == {"file": "/out/model.bin", "y": 1}
    assert ids(db.task_query({})) == ["c1", "p1"]
    # the data edge is derived by the upsert (the file p1 generated, c1 used)
    assert [(r["task_id"], r["depth"]) for r in db.get_downstream("p1")] == [("c1", 1)]
    new_id = db.insert_or_update_task({"activity_id": "anonymous"})
    assert len(new_id) == 36 and db.task_query({"task_id": new_id})[0]["activity_id"] == "anonymous"
    with pytest.raises(ValueError):
        db.insert_or_update_task("not a task")


def test_insert_or_update_workflow(empty):
    db = empty
    wf = WorkflowObject(name="w", campaign_id="c")
    assert db.insert_or_update_workflow(wf) is wf
    assert wf.workflow_id is not None
    db.insert_or_update_workflow(
        WorkflowObject(workflow_id=wf.workflow_id, status="FINISHED", ended_at=T0 + 9)
    )
    got = db.get_workflow_object(wf.workflow_id)
    assert isinstance(got, WorkflowObject)
    assert got.to_dict() == {
        "type": "workflow",
        "workflow_id": wf.workflow_id,
        "name": "w",
        "campaign_id": "c",
        "status": "FINISHED",
        "ended_at": T0 + 9,
    }
    assert db.get_workflow_object("nope") is None


# --- deletes ---------------------------------------------------------------------------------


def _count(db, table):
    return db.sql_rows(f"SELECT count(*) FROM {table}")[1][0][0]


def test_delete_workflow_data(loaded):
    db = loaded
    assert db.delete_workflow_data("wf-diamond") == {"workflows": 1, "tasks": 5, "objects": 0}
    assert ids(db.task_query({"workflow_id": "wf-diamond"})) == []
    assert [w["workflow_id"] for w in db.workflow_query({})] == ["wf-chain", "wf-misc"]
    _, edges = db.sql_rows("SELECT src_task_id, dst_task_id FROM task_edges")
    assert not [e for e in edges if e[0].startswith("d") or e[1].startswith("d")]
    assert _count(db, "task_values WHERE task_id LIKE 'd%'") == 0
    assert len(db.task_query({})) == 13
    assert db.delete_workflow_data("wf-diamond") == {"workflows": 0, "tasks": 0, "objects": 0}


def test_delete_campaign_data(loaded):
    db = loaded
    assert db.delete_campaign_data("camp-A") == {"workflows": 2, "tasks": 8, "objects": 1}
    assert {r["campaign_id"] for r in db.task_query({})} == {"camp-B"}
    assert db.blob_object_query({}) == []
    assert _count(db, "task_telemetry") == 0
    assert [w["workflow_id"] for w in db.workflow_query({})] == ["wf-misc"]


# --- data objects ----------------------------------------------------------------------------


def test_objects_with_versions(empty):
    db = empty
    oid = db.insert_or_update_object(b"v0", object_id="m", object_type="ml_model", tags=["a"])
    assert oid == "m"
    assert db.insert_or_update_object(b"v1", object_id="m", control_version=True) == "m"
    assert [h["version"] for h in db.get_object_history("m")] == [1, 0]
    assert db.get_blob_object("m").data == b"v1"
    assert db.get_blob_object("m", version=0).data == b"v0"
    latest = db.get_blob_object("m")
    assert (latest.version, latest.prev_version, latest.object_type, latest.tags) == (
        1,
        0,
        "ml_model",
        ["a"],
    )  # fields not given are kept
    # without version control the latest is replaced, and its number still grows
    db.insert_or_update_object(b"v2", object_id="m")
    history = db.get_object_history("m")
    assert [(h["version"], h["prev_version"]) for h in history] == [(2, 0), (0, None)]
    assert history[0]["data_sha256"] == __import__("hashlib").sha256(b"v2").hexdigest()
    assert history[0]["object_size_bytes"] == 2 and "data" not in history[0]
    fp = db.get_blob_fingerprint("m", version=0)
    assert fp == {
        "object_id": "m",
        "version": 0,
        "object_size_bytes": 2,
        "data_sha256": __import__("hashlib").sha256(b"v0").hexdigest(),
        "data_hash_algo": "sha256",
        "storage_type": "in_object",
    }
    db.insert_or_update_dataset(b"v0", object_id="d")
    assert db.blob_objects_equal("m", "d", version_a=0)
    assert not db.blob_objects_equal("m", "d")
    assert db.get_blob_object("d").object_type == "dataset"
    db.insert_or_update_ml_model({"weights": [1, 2]}, object_id="p", pickle=True)
    blob = db.get_blob_object("p")
    assert pickle.loads(blob.data) == {"weights": [1, 2]} and blob.pickle is True
    assert [o["object_id"] for o in db.blob_object_query({"object_type": "ml_model"})] == ["m", "p"]
    db.update_object_metadata("m", custom_metadata={"acc": 0.9})
    latest = db.get_blob_object("m")
    assert (latest.version, latest.data, latest.custom_metadata) == (3, b"v2", {"acc": 0.9})
    with pytest.raises(TypeError, match="pickle=True"):
        db.insert_or_update_object({"not": "bytes"})
    with pytest.raises(ValueError, match="Object not found"):
        db.get_blob_object("m", version=7)
    with pytest.raises(ValueError, match="Object not found"):
        db.get_blob_fingerprint("zzz")
    assert db.get_object_history("zzz") == []


# --- exports ---------------------------------------------------------------------------------


def test_dump_to_file_and_to_df(loaded, tmp_path):
    db = loaded
    flt = {"workflow_id": "wf-chain"}
    expected = db.task_query(flt)
    path = db.dump_to_file(filter=flt, output_file=str(tmp_path / "t.json"))
    assert json.loads(open(path).read()) == expected
    path = db.dump_to_file(filter=flt, output_file=str(tmp_path / "t.csv"), export_format="csv")
    lines = open(path).read().splitlines()
    header = lines[0].split(",")
    assert len(lines) == 4 and "used.x" in header and "telemetry_at_end.cpu.percent_all" in header
    path = db.dump_to_file(
        filter=flt, output_file=str(tmp_path / "t.parquet"), export_format="parquet"
    )
    table = pq.read_table(path)
    assert table.num_rows == 3 and table.column("used.x").to_pylist() == [1.5, 5.0, 3.0]
    path = db.dump_to_file(collection="objects", should_zip=True, output_file=str(tmp_path / "o"))
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["dump_file.json"]
        [obj] = json.loads(zf.read("dump_file.json"))
    assert obj["object_id"] == "obj-1" and obj["data"]["$binary"]["subType"] == "00"
    with pytest.raises(ValueError, match="should_zip"):
        db.dump_to_file()
    with pytest.raises(ValueError, match="export_format"):
        db.dump_to_file(filter=flt, export_format="xml")
    df = db.to_df(filter=flt)
    assert list(df["task_id"]) == ["a1", "a2", "a3"]
    assert df.loc[1, "used"] == {"data_path": "/data/clean.parquet", "lr": 0.01, "x": 5}
    assert list(db.to_df("workflows")["workflow_id"]) == ["wf-chain", "wf-diamond", "wf-misc"]


def test_sql_returns_dataframes_and_refuses_writes(loaded):
    db = loaded
    df = db.sql(
        "SELECT activity_id, total_duration_s FROM v_activity_stats"
        " WHERE workflow_id = 'wf-chain' ORDER BY activity_id"
    )
    assert df.to_dict("records") == [
        {"activity_id": "evaluate", "total_duration_s": 1.0},
        {"activity_id": "load", "total_duration_s": 1.0},
        {"activity_id": "train", "total_duration_s": 2.0},
    ]
    with pytest.raises(ReadOnlyError, match="read-only"):
        db.sql("DELETE FROM tasks")
    assert len(db.task_query({})) == 18
    assert db.install_views() == 0  # already there, unchanged
    assert db.install_views(force=True) == 10


# --- the process's DBAPI, settings, records for reports --------------------------------------


def test_get_db_follows_settings(set_env, tmp_path, pg_url):
    db = get_db()
    assert db.engine == "duckdb" and get_db() is db
    assert DBAPI().backend.path == db.backend.path  # Flowcept's DBAPI(): the configured one
    assert db.backend.path == os.path.abspath("provwh.duckdb")
    set_env(PROVWH_DUCKDB_PATH=str(tmp_path / "other.duckdb"))
    db2 = get_db()
    assert db2 is not db and db2.backend.path == str(tmp_path / "other.duckdb")
    set_env(PROVWH_POSTGRES_URL=pg_url)
    assert get_db().engine == "postgresql" and get_db().liveness_test()
    set_env(PROVWH_POSTGRES_URL="", PROVWH_DUCKDB_ENABLED="false")
    with pytest.raises(ValueError, match="no database is enabled"):
        get_db()


def test_liveness_of_an_unreachable_server():
    db = DBAPI.from_postgres("postgresql://postgres@127.0.0.1:1/nothing")
    assert db.liveness_test() is False


def test_records_for(engine, loaded, set_env):
    if engine == "duckdb":
        set_env(PROVWH_DUCKDB_PATH=loaded.backend.path)
    else:
        set_env(PROVWH_POSTGRES_URL=loaded.backend.target.url)
    recs = records_for(workflow_id="wf-chain")
    assert [(r["type"], r.get("task_id", r.get("workflow_id"))) for r in recs] == [
        ("workflow", "wf-chain"),
        ("task", "a1"),
        ("task", "a2"),
        ("task", "a3"),
    ]
    assert list(recs[0]) == ["type", "workflow_id", "campaign_id", "name", "user", "started_at",
                             "ended_at", "status"]  # fmt: skip
    assert recs[0]["ended_at"] == T0 + 7 and recs[2]["generated"]["loss"] == 0.25
    camp = records_for(campaign_id="camp-A")
    assert [r.get("task_id", r.get("workflow_id")) for r in camp] == [
        "wf-chain", "wf-diamond", "a1", "a2", "a3", "d1", "d1c", "d2", "d3", "d4"
    ]  # fmt: skip
    assert records_for(workflow_id="nope") == []
    with pytest.raises(ValueError):
        records_for()


def test_a_duckdb_file_locked_by_another_process_is_waited_for_then_reported(tmp_path):
    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True);"
         " time.sleep(30)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ok"
        from provwh.query.backends import DatabaseLocked, DuckBackend

        db = DBAPI(DuckBackend(path, lock_timeout=0.3))
        with pytest.raises(DatabaseLocked) as caught:
            db.task_query({})
        assert (caught.value.pid, caught.value.waited) == (holder.pid, 0.3)
        assert str(caught.value).startswith(f"DuckDB file {path} is held by another process")
    finally:
        holder.kill()
        holder.wait()


# --- real captures ---------------------------------------------------------------------------


def _capture_run():
    from provwh import Flowcept, flowcept_task

    @flowcept_task(output_names="path")
    def prepare(n):
        return f"/tmp/provwh-query-test/data_{n}.csv"

    @flowcept_task(output_names="score")
    def train(data_path, x):
        return x * 1.5

    with Flowcept(workflow_name="captured", campaign_id="camp-cap") as f:
        p = prepare(3)
        for x in (1, 4, 7):
            train(p, x)
    return f.current_workflow_id


def test_query_a_captured_run_on_the_embedded_duckdb_file():
    wf = _capture_run()
    db = get_db()
    assert db.engine == "duckdb"
    assert db.get_tasks_from_current_workflow() == db.task_query({"workflow_id": wf})
    used = db.task_query({"used.x": {"$gt": 3}}, projection=["activity_id", "used.x"])
    assert used == [
        {"activity_id": "train", "used": {"x": 4}},
        {"activity_id": "train", "used": {"x": 7}},
    ]
    [prep] = db.task_query({"activity_id": "prepare"})
    downstream = db.get_downstream(prep["task_id"])
    assert [(d["activity_id"], d["depth"]) for d in downstream] == [("train", 1)] * 3
    cost = db.sql(
        "SELECT activity_id, task_count FROM v_activity_stats WHERE workflow_id = ?"
        " ORDER BY activity_id",
        [wf],
    )
    assert cost.to_dict("records") == [
        {"activity_id": "prepare", "task_count": 1},
        {"activity_id": "train", "task_count": 3},
    ]
    assert db.get_workflow_object(wf).name == "captured"


def test_report_reads_a_captured_run_from_the_database():
    from provwh import Flowcept

    wf = _capture_run()
    out = Flowcept.generate_report(workflow_id=wf, output_path="card.md")
    assert (out["input_mode"], out["workflows"], out["tasks"]) == ("db", 1, 4)
    card = open("card.md").read()
    assert card.startswith("# Workflow Card: captured") and "| `train` | 3 |" in card


@pytest.mark.parametrize("engine", ENGINES)
def test_report_from_the_database_lists_the_workflows_objects(engine, request, set_env):
    """Models and datasets stored with Flowcept.db are the card's objects (never tasks), read
    from the data_objects table with every kept version, on both engines."""
    from provwh import Flowcept

    if engine == "postgres":
        set_env(
            PROVWH_POSTGRES_URL=request.getfixturevalue("pg_url"), PROVWH_DUCKDB_ENABLED="false"
        )
    wf = _capture_run()
    assert Flowcept.db.engine == {"duckdb": "duckdb", "postgres": "postgresql"}[engine]
    [prep] = Flowcept.db.task_query({"workflow_id": wf, "activity_id": "prepare"})
    for i in range(3):  # one model, three kept versions
        Flowcept.db.insert_or_update_ml_model(
            b"w" * (100 * (i + 1)), object_id="net", workflow_id=wf, control_version=True,
            custom_metadata={"epoch": i}, tags=["cnn"],
        )  # fmt: skip
    for name in ("train-set", "test-set"):
        Flowcept.db.insert_or_update_dataset(
            b"rows", object_id=name, workflow_id=wf, task_id=prep["task_id"]
        )
    Flowcept.db.insert_or_update_dataset(b"other", object_id="elsewhere", workflow_id="wf-x")

    records = records_for(workflow_id=wf, objects=True)
    kinds = [r["type"] for r in records]
    assert kinds == ["workflow"] + ["task"] * 4 + ["object"] * 5
    assert [(r["object_id"], r["version"]) for r in records[5:]] == [
        ("net", 0), ("net", 1), ("net", 2), ("test-set", 0), ("train-set", 0)
    ]  # fmt: skip
    assert all("data" not in r and r["storage_type"] == "in_object" for r in records[5:])
    assert [r["type"] for r in records_for(workflow_id=wf)] == ["workflow"] + ["task"] * 4

    out = Flowcept.generate_report(workflow_id=wf, output_path="card.md")
    assert (out["workflows"], out["tasks"], out["objects"]) == (1, 4, 5)
    lines = open("card.md").read().splitlines()
    assert "- Objects: 3 (2 dataset, 1 ml_model)" in lines
    assert "| By type | dataset: 2, ml_model: 1 |" in lines
    assert "| Object records (versions) | 5 |" in lines
    model = next(line for line in lines if line.startswith("| `net` |"))
    assert model.split(" | ")[1:5] == ["2", "3", "300 B", "—"]
    assert model.endswith("| `cnn` | epoch=2 |")
    datasets = [
        line.split(" | ")[:5] for line in lines if line.startswith(("| `test", "| `train-"))
    ]
    assert sorted(datasets) == [
        ["| `test-set`", "0", "1", "4 B", f"`{prep['task_id']}`"],
        ["| `train-set`", "0", "1", "4 B", f"`{prep['task_id']}`"],
    ]


def test_query_a_captured_run_on_postgres(set_env, pg_url):
    set_env(PROVWH_POSTGRES_URL=pg_url, PROVWH_DUCKDB_ENABLED="false")
    wf = _capture_run()
    db = get_db()
    assert db.engine == "postgresql"
    assert [t["used"]["x"] for t in db.task_query({"used.x": {"$gt": 3}})] == [4, 7]
    summary = db.task_summary({"workflow_id": wf})
    assert summary["count"] == 4 and summary["status_counts"] == {"FINISHED": 4}
    [prep] = db.task_query({"activity_id": "prepare"})
    produced = db.sql(
        "SELECT DISTINCT producer_activity_id, value_text FROM v_data_lineage"
        " WHERE consumer_activity_id = %s",
        ["train"],
    )
    assert produced.to_dict("records") == [
        {"producer_activity_id": "prepare", "value_text": "/tmp/provwh-query-test/data_3.csv"}
    ]
    assert len(db.get_downstream(prep["task_id"])) == 3


def test_import_provwh_stays_light():
    code = (
        "import sys, provwh, provwh.query, provwh.query.api;"
        "heavy = [m for m in ('provwh.query.api', 'sqlalchemy', 'duckdb', 'pandas', 'psycopg')"
        " if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['provwh.query.api']"
    code = "import sys, provwh; print([m for m in sys.modules if m.startswith('provwh.query')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_io_helpers_do_not_leak(loaded):
    buf = io.StringIO()
    from provwh.cli.sql import write_table

    names, rows = loaded.sql_rows("SELECT 1 AS one, 'x' AS two, NULL AS three")
    write_table(names, rows, buf)
    assert buf.getvalue() == "one | two | three\n----+-----+------\n  1 | x   | NULL\n(1 row)\n"
    assert MODEL_V1 == loaded.get_blob_object("obj-1").data


def test_a_typo_is_reported_as_such_not_as_a_permission_problem():
    from provwh.query.guard import check_read_only

    with pytest.raises(ValueError, match=r"^syntax error at 'SELEC', not an SQL statement: "
                       r"did you mean SELECT\?$") as err:  # fmt: skip
        check_read_only("SELEC 1")
    assert not isinstance(err.value, ReadOnlyError)
    with pytest.raises(ReadOnlyError, match=r"^read-only: DELETE statements are refused"):
        check_read_only("delete from tasks")
    assert check_read_only(" select 1; ").strip(" ;") == "select 1"


def test_v_task_telemetry_is_generated_from_the_telemetry_columns():
    from provwh.core import resources
    from provwh.query import telemetry_view
    from provwh.warehouse.schema import task_telemetry

    assert resources.sql_text(telemetry_view.VIEW_FILE) == telemetry_view.render(), (
        "sql/views/v_task_telemetry.sql is stale: run `python -m provwh.query.telemetry_view`"
    )
    typed = [c.name for c in task_telemetry.columns
             if c.name not in ("task_id", "phase", "task_started_at", "gpu", "extra")]  # fmt: skip
    assert telemetry_view.metrics() == typed and len(typed) == 32
    for name in typed:  # each metric: a start CASE, an end CASE and a VALUES row
        assert telemetry_view.render().count(f"'{name}'") == 3


# --- NaN and infinities ------------------------------------------------------------------------


def _diverged_run():
    from provwh import Flowcept, flowcept_task

    @flowcept_task(output_names=["loss", "grad"])
    def step(lr, cfg):
        return float("nan"), float("inf")

    @flowcept_task(custom_metadata={"threshold": float("inf")})
    def summarize(x):
        return {"best": float("-inf"), "ok": 1.5, "hist": [1.0, float("nan")]}

    with Flowcept(workflow_name="diverged") as f:
        step(0.1, {"clip": float("inf")})
        summarize(float("nan"))
    return f.current_workflow_id


def _text(value):
    """JSON text with NaN / Infinity literals, keys sorted (PostgreSQL's JSONB reorders them)."""
    return json.dumps(value, sort_keys=True)


def test_nan_and_infinities_from_capture_to_queries_and_exports(engine, set_env, request, tmp_path):
    """A diverged run is found: NaN / ±inf survive the buffer, the load, queries and exports."""
    if engine == "postgres":
        set_env(PROVWH_POSTGRES_URL=request.getfixturevalue("pg_url"),
                PROVWH_DUCKDB_ENABLED="false")  # fmt: skip
    wf = _diverged_run()
    db = get_db()
    tasks = db.get_tasks_from_current_workflow()
    assert [(t["activity_id"], _text(t["used"]), _text(t["generated"])) for t in tasks] == [
        ("step", '{"cfg": {"clip": Infinity}, "lr": 0.1}', '{"grad": Infinity, "loss": NaN}'),
        ("summarize", '{"x": NaN}', '{"best": -Infinity, "hist": [1.0, NaN], "ok": 1.5}'),
    ]
    mark = "%s" if engine == "postgres" else "?"
    _, rows = db.sql_rows(
        "SELECT t.activity_id, v.direction, v.key_path, v.value_type, v.value_num"
        " FROM task_values v JOIN tasks t USING (task_id) WHERE t.workflow_id = " + mark +
        " ORDER BY 1, 2, 3", [wf],
    )  # fmt: skip
    assert repr(rows) == repr([
        ("step", "generated", "grad", "float", float("inf")),
        ("step", "generated", "loss", "float", float("nan")),
        ("step", "used", "cfg.clip", "float", float("inf")),
        ("step", "used", "lr", "float", 0.1),
        ("summarize", "generated", "best", "float", float("-inf")),
        ("summarize", "generated", "hist", "list", None),
        ("summarize", "generated", "ok", "float", 1.5),
        ("summarize", "used", "x", "float", float("nan")),
    ])  # fmt: skip

    def found(flt):
        return [t["activity_id"] for t in db.task_query(flt, projection=["activity_id"])]

    assert found({"generated.loss": float("nan")}) == ["step"]
    assert found({"used.x": {"$in": [float("nan"), 3]}}) == ["summarize"]
    assert found({"generated.grad": {"$gt": 1e308}}) == ["step"]
    assert found({"used.cfg.clip": float("inf")}) == ["step"]
    assert found({"generated.best": float("-inf")}) == ["summarize"]
    assert found({"generated.best": {"$lt": -1e308}}) == ["summarize"]
    assert found({"generated.loss": None}) == ["summarize"]  # NaN is a value, not a null
    assert found({"generated.loss": {"$gt": 1e308}}) == ["step"]  # both order NaN on top
    assert found({"generated.loss": {"$lt": 0}}) == []
    assert found({"generated.hist": [1.0, float("nan")]}) == ["summarize"]  # a list leaf
    assert found({"custom_metadata.threshold": float("inf")}) == ["summarize"]  # a document
    assert found({"custom_metadata.threshold": float("-inf")}) == []
    # exports: the archive keeps the doubles; a record dump writes NaN where Parquet can
    from provwh.exports.parquet import attach_sql, export_parquet
    from provwh.exports.source import open_source

    if engine == "postgres":
        location = {"postgres_url": request.getfixturevalue("pg_url")}
    else:
        location = {"duckdb_path": db.backend.path}
    db.close()
    with open_source(**location) as src:
        export_parquet(src, str(tmp_path / "archive"), workflow_id=wf)
    import duckdb

    with duckdb.connect() as conn:
        for statement in attach_sql(str(tmp_path / "archive")):
            conn.execute(statement)
        got = conn.execute(
            "SELECT key_path, value_num FROM task_values"
            " WHERE value_type = 'float' AND NOT isfinite(value_num) ORDER BY 1"
        ).fetchall()
    assert repr(got) == repr([
        ("best", float("-inf")), ("cfg.clip", float("inf")), ("grad", float("inf")),
        ("loss", float("nan")), ("x", float("nan")),
    ])  # fmt: skip
    path = get_db().dump_to_file("tasks", {"workflow_id": wf}, str(tmp_path / "t.parquet"),
                                 export_format="parquet")  # fmt: skip
    table = pq.read_table(path).to_pydict()
    assert repr(table["generated.loss"]) == "[nan, None]"
    assert repr(table["used.x"]) == "[None, nan]"
    assert table["generated.hist"] == [None, '[1.0,{"$float":"NaN"}]']
    dumped = json.loads(get_db().dump_to_file(
        "tasks", {"workflow_id": wf}, str(tmp_path / "t.json"), export_format="json"
    ) and open(tmp_path / "t.json").read())  # fmt: skip
    assert _text(dumped[0]["generated"]) == (
        '{"grad": {"$float": "Infinity"}, "loss": {"$float": "NaN"}}'
    )
