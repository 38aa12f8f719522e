"""Parity: one fixture loaded into PostgreSQL, a DuckDB file and DuckDB over the batch files;
every view, lineage call and filter gives the same (exact, expected) answer on all three."""

from __future__ import annotations

import re

import pytest
from query_helpers import (
    ALL_TASKS,
    MODEL_V0,
    MODEL_V1,
    T0,
    every_source,
    normalize,
    parity_batches,
    ts,
    write_batches,
)

from provwh.query.views import view_names

SOURCES = ("postgres", "duckdb", "files")


@pytest.fixture(scope="module")
def batch_files(tmp_path_factory):
    return write_batches(tmp_path_factory.mktemp("parity") / "spool", parity_batches())


@pytest.fixture(scope="module")
def dbs(pg_server, batch_files, tmp_path_factory):
    """The fixture in each source, as DBAPIs."""
    with every_source(pg_server, batch_files, tmp_path_factory) as out:
        yield out


@pytest.fixture(params=SOURCES)
def db(request, dbs):
    return dbs[request.param]


def ids(records):
    return sorted(r["task_id"] for r in records)


# --- views -----------------------------------------------------------------------------------


def test_every_view_is_installed_everywhere(dbs):
    expected = [
        "v_activity_stats",
        "v_agents",
        "v_data_lineage",
        "v_data_objects",
        "v_loops",
        "v_task_edges",
        "v_task_io",
        "v_task_telemetry",
        "v_tasks",
        "v_workflow_summary",
    ]
    assert view_names() == expected
    for db in dbs.values():
        df = db.sql(
            "SELECT table_name FROM information_schema.views"
            " WHERE table_schema = current_schema() AND starts_with(table_name, 'v_')"
        )
        assert sorted(df["table_name"]) == expected


@pytest.mark.parametrize("view", sorted(view_names()))
def test_views_give_identical_rows(dbs, view):
    results = {}
    for name, db in dbs.items():
        names, rows = db.sql_rows(f"SELECT * FROM {view}")
        results[name] = (names, normalize(names, rows))
    assert results["postgres"][0] == results["duckdb"][0] == results["files"][0]
    assert results["postgres"][1] == results["duckdb"][1] == results["files"][1]
    if view not in ("v_agents", "v_loops"):  # no agents or loops here: test_loops_agents_db.py
        assert results["postgres"][1], f"{view} is empty on the fixture"


def test_v_tasks(db):
    df = db.sql("SELECT task_id, status, duration_s, started_at FROM v_tasks ORDER BY task_id")
    assert list(df["task_id"]) == ALL_TASKS
    rows = {r.task_id: r for r in df.itertuples()}
    assert rows["a2"].duration_s == 2.0
    assert rows["n1"].duration_s == 0.125
    assert rows["d3"].duration_s == 2.0 and rows["d3"].status == "ERROR"
    assert rows["r1"].duration_s != rows["r1"].duration_s  # NaN: still running
    assert rows["a1"].started_at.to_pydatetime() == ts(0)


def test_v_workflow_summary(db):
    names, rows = db.sql_rows(
        "SELECT workflow_id, name, campaign_id, status, task_count, finished_count, error_count,"
        " running_count, activity_count, duration_s, task_time_s, host_count, hosts"
        " FROM v_workflow_summary ORDER BY workflow_id"
    )
    assert rows == [
        ("wf-chain", "chain", "camp-A", "FINISHED", 3, 3, 0, 0, 3, 7.0, 4.0, 1, "h1"),
        ("wf-diamond", "diamond", "camp-A", "ERROR", 5, 4, 1, 0, 4, 7.0, 5.5, 2, "h2,h3"),
        ("wf-misc", "misc", "camp-B", "RUNNING", 10, 8, 1, 1, 6, None, 12.625, 1, "h1"),
    ]


def test_v_activity_stats(db):
    _, rows = db.sql_rows(
        "SELECT activity_id, task_count, finished_count, error_count, timed_count,"
        " total_duration_s, avg_duration_s, min_duration_s, max_duration_s"
        " FROM v_activity_stats WHERE workflow_id = 'wf-diamond' ORDER BY activity_id"
    )
    assert rows == [
        ("merge", 1, 1, 0, 1, 1.0, 1.0, 1.0, 1.0),
        ("proc", 2, 1, 1, 2, 3.0, 1.5, 1.0, 2.0),
        ("split", 1, 1, 0, 1, 1.0, 1.0, 1.0, 1.0),
        ("split_part", 1, 1, 0, 1, 0.5, 0.5, 0.5, 0.5),
    ]


def test_v_task_edges_and_data_lineage(db):
    _, edges = db.sql_rows("SELECT src_task_id, dst_task_id, kind FROM v_task_edges")
    assert sorted(edges) == [
        ("a1", "a2", "dataflow"),
        ("a2", "a3", "dataflow"),
        ("c1", "c2", "explicit"),
        ("c2", "c3", "explicit"),
        ("c3", "c1", "explicit"),
        ("d1", "d1c", "parent"),
        ("d1", "d2", "dataflow"),
        ("d1", "d3", "dataflow"),
        ("d1", "d4", "explicit"),
        ("d2", "d4", "dataflow"),
        ("d3", "d4", "dataflow"),
        ("t1", "t3", "dataflow"),
    ]
    _, rows = db.sql_rows(
        "SELECT producer_task_id, generated_key, used_key, value_type, value_text, value_num,"
        " consumer_task_id FROM v_data_lineage"
    )
    assert sorted(rows, key=repr) == sorted(
        [
            ("a1", "data_path", "data_path", "str", "/data/clean.parquet", None, "a2"),
            ("a2", "model", "model", "str", "/models/m1.pt", None, "a3"),
            ("d1", "shard_a", "shard", "str", "/s/a.bin", None, "d2"),
            ("d1", "shard_b", "shard", "str", "/s/b.bin", None, "d3"),
            ("d2", "out", "a", "str", "/s/a.out", None, "d4"),
            ("d3", "out", "b", "str", "/s/b.out", None, "d4"),
            ("t1", "big", "big", "int", None, 42.0, "t3"),
        ],
        key=repr,
    )


def test_v_task_io_and_telemetry(db):
    _, rows = db.sql_rows(
        "SELECT direction, key_path, value_type, value_text, value_num, value_bool"
        " FROM v_task_io WHERE task_id = 'n1' ORDER BY key_path"
    )
    assert rows == [
        ("used", "big", "int", str(2**60), float(2**60), None),
        ("used", "cfg.depth", "int", None, 4.0, None),
        ("used", "cfg.name", "str", "résumé", None, None),
        ("used", "xs", "list", None, None, None),
    ]
    _, rows = db.sql_rows(
        "SELECT metric, start_value, end_value, delta FROM v_task_telemetry"
        " WHERE task_id = 'a2' AND metric IN ('cpu_percent', 'proc_rss', 'cpu_user')"
        " ORDER BY metric"
    )
    assert rows == [
        ("cpu_percent", 50.0, 54.0, 4.0),
        ("cpu_user", 10.0, 14.0, 4.0),
        ("proc_rss", 1000.0, 1004.0, 4.0),
    ]


def test_v_data_objects(db):
    _, rows = db.sql_rows(
        "SELECT object_id, version, prev_version, object_size_bytes, is_latest"
        " FROM v_data_objects ORDER BY version"
    )
    assert rows == [
        ("obj-1", 0, None, len(MODEL_V0), False),
        ("obj-1", 1, 0, len(MODEL_V1), True),
    ]


# --- filters ---------------------------------------------------------------------------------

FILTERS = [
    ({"used.x": {"$gt": 3}}, "a2 d2 r1"),
    ({"used.x": {"$gte": 3, "$lt": 10}}, "a2 a3 d2"),
    ({"used.x": 5}, "a2"),
    ({"used.x": 5.0}, "a2"),
    ({"used.x": {"$in": [1.5, 2, "3"]}}, "a1 d3"),
    ({"used.x": {"$nin": [5, 7]}}, "a1 a3 d3 f1 r1"),
    ({"used.x": {"$ne": 5}}, "a1 a3 d2 d3 f1 r1"),
    ({"used.x": {"$exists": False}}, "c1 c2 c3 d1 d1c d4 n1 t1 t2 t3 t4"),
    ({"used.x": {"$not": {"$gt": 3}}}, "a1 a3 d3 f1"),
    ({"status": "ERROR"}, "d3 f1"),
    ({"status": {"$in": ["RUNNING", "ERROR"]}}, "d3 f1 r1"),
    ({"activity_id": {"$regex": "^pro"}}, "d2 d3 t1"),
    ({"activity_id": {"$regex": "LOAD", "$options": "i"}}, "a1"),
    ({"activity_id": re.compile("^SPLIT", re.IGNORECASE)}, "d1 d1c"),
    ({"activity_id": {"$gt": "proc"}}, "a2 d1 d1c r1 t1"),
    ({"custom_metadata.owner": "alice"}, "a2"),
    ({"custom_metadata.priority": {"$gte": 2}}, "a2"),
    ({"tags": "eval"}, "a3"),
    ({"tags": {"$in": ["final", "zzz"]}}, "a3"),
    ({"tags": ["eval", "final"]}, "a3"),
    ({"dependencies": "d1"}, "d4"),
    ({"telemetry_at_end.cpu.percent_all": {"$gt": 10}}, "a2"),
    ({"generated.loss": {"$lt": 0.5}}, "a2"),
    ({"generated.accuracy": {"$gt": 0.8}}, "a3"),
    ({"$or": [{"activity_id": "merge"}, {"used.shard": "/s/a.bin"}]}, "d2 d4"),
    ({"$and": [{"workflow_id": "wf-diamond"}, {"status": {"$ne": "ERROR"}}]}, "d1 d1c d2 d4"),
    ({"$nor": [{"workflow_id": "wf-misc"}, {"activity_id": "proc"}]}, "a1 a2 a3 d1 d1c d4"),
    ({"ended_at": None}, "r1"),
    ({"parent_task_id": {"$exists": True}}, "d1c"),
    ({"started_at": {"$gte": T0 + 20, "$lt": T0 + 26}}, "t1 t4"),
    ({"used.cfg.name": "résumé"}, "n1"),
    ({"used.cfg": {"depth": 4, "name": "résumé"}}, "n1"),
    ({"used.xs": [1, 2, 3]}, "n1"),
    ({"used.xs.1": 2}, "n1"),
    ({"used.big": 2**60}, "n1"),
    ({"used.flag": True}, "t2"),
    ({"generated.flag": True}, "t1"),
    ({"used.n": 1}, "t2"),
    ({"used.n": True}, ""),
    ({"used.none": {"$exists": True}}, "t2"),
    ({"used.none": {"$eq": None, "$exists": True}}, "t2"),
    ({"stderr": {"$regex": "Error"}}, "f1"),
    ({"used.path": re.compile(r"raw\.csv$")}, "a1"),
    ({"workflow_id": "wf-chain", "used.x": {"$lte": 3}}, "a1 a3"),
    ({"campaign_id": "camp-B"}, "c1 c2 c3 f1 n1 r1 t1 t2 t3 t4"),
    ({"no_such_field": 1}, ""),
    ({"no_such_field": {"$ne": 1}}, ""),
    ({"used.no_such": {"$gt": 0}}, ""),
    ({"custom_metadata.nope": "x"}, ""),
    ({"status.deeper": "x"}, ""),
    ({}, " ".join(ALL_TASKS)),
]


@pytest.mark.parametrize(("flt", "expected"), FILTERS, ids=[repr(f[0]) for f in FILTERS])
def test_filters(dbs, flt, expected):
    for name, db in dbs.items():
        assert ids(db.task_query(flt)) == sorted(expected.split()), name


def test_workflow_and_object_filters(db):
    assert [w["workflow_id"] for w in db.workflow_query({"campaign_id": "camp-A"})] == [
        "wf-chain",
        "wf-diamond",
    ]
    assert [w["workflow_id"] for w in db.workflow_query({"used.mode": "fast"})] == ["wf-misc"]
    assert [w["workflow_id"] for w in db.workflow_query({"ended_at": {"$gt": T0 + 10}})] == [
        "wf-diamond"
    ]
    objs = db.blob_object_query({"object_type": "ml_model"})
    assert [(o["object_id"], o["version"], o["data"]) for o in objs] == [("obj-1", 1, MODEL_V1)]
    assert db.query({"version": {"$lt": 1}}, collection="object_history")[0]["data"] == MODEL_V0


# --- query shapes ----------------------------------------------------------------------------


def test_records_are_flowcept_shaped(db):
    [a2] = db.task_query({"task_id": "a2"})
    assert list(a2)[0] == "type"
    assert a2 == {
        "type": "task",
        "task_id": "a2",
        "workflow_id": "wf-chain",
        "campaign_id": "camp-A",
        "activity_id": "train",
        "status": "FINISHED",
        "hostname": "h1",
        "started_at": T0 + 2,
        "ended_at": T0 + 4,
        "used": {"data_path": "/data/clean.parquet", "lr": 0.01, "x": 5},
        "generated": {"model": "/models/m1.pt", "loss": 0.25},
        "custom_metadata": {"owner": "alice", "priority": 2},
        "telemetry_at_start": a2["telemetry_at_start"],
        "telemetry_at_end": a2["telemetry_at_end"],
    }
    assert a2["telemetry_at_end"]["cpu"]["percent_all"] == 54.0
    [n1] = db.task_query({"task_id": "n1"})
    assert n1["used"]["big"] == 2**60 and n1["used"]["xs"] == [1, 2, 3]


def test_projection_sort_limit(db):
    rows = db.task_query(
        {"used.x": {"$exists": True}},
        projection=["task_id", "used.x"],
        sort=[("used.x", -1)],
        limit=3,
    )
    assert rows == [
        {"task_id": "r1", "used": {"x": 10}},
        {"task_id": "d2", "used": {"x": 7}},
        {"task_id": "a2", "used": {"x": 5}},
    ]
    rows = db.task_query({"workflow_id": "wf-chain"}, projection={"used": 0, "generated": 0})
    assert [sorted(r) for r in rows][0] == sorted(
        ["type", "task_id", "workflow_id", "campaign_id", "activity_id", "status", "hostname",
         "started_at", "ended_at"]
    )  # fmt: skip
    order = db.task_query(
        {"workflow_id": "wf-misc"},
        projection=["task_id"],
        sort=[("activity_id", 1), ("started_at", -1)],
    )
    assert [r["task_id"] for r in order] == [
        "t2",
        "t3",
        "t4",
        "c3",
        "c2",
        "c1",
        "f1",
        "n1",
        "t1",
        "r1",
    ]
    # default order: start time, then id; limit=0 is no limit
    assert [r["task_id"] for r in db.task_query({"workflow_id": "wf-chain"}, limit=0)] == [
        "a1",
        "a2",
        "a3",
    ]
    # missing values sort first ascending, as in MongoDB
    rows = db.task_query(
        {"workflow_id": "wf-diamond"}, projection=["task_id"], sort=[("used.x", 1)]
    )
    assert [r["task_id"] for r in rows] == ["d1", "d1c", "d4", "d3", "d2"]


def test_aggregation(db):
    rows = db.task_query(
        {"used.x": {"$exists": True}},
        projection=["workflow_id"],
        aggregation=[("avg", "used.x"), ("sum", "used.x"), ("max", "used.x"), ("count", "task_id")],
        sort=[("workflow_id", 1)],
    )
    assert rows == [
        {"workflow_id": "wf-chain", "avg_used_x": 9.5 / 3, "sum_used_x": 9.5, "max_used_x": 5.0,
         "count_task_id": 3},
        {"workflow_id": "wf-diamond", "avg_used_x": 4.5, "sum_used_x": 9.0, "max_used_x": 7.0,
         "count_task_id": 2},
        {"workflow_id": "wf-misc", "avg_used_x": 3.5, "sum_used_x": 7.0, "max_used_x": 10.0,
         "count_task_id": 2},
    ]  # fmt: skip
    rows = db.task_query(
        {"workflow_id": "wf-diamond"},
        projection=["activity_id"],
        aggregation=[("min", "started_at")],
        sort=[("min_started_at", -1)],
        limit=2,
    )
    assert rows == [
        {"activity_id": "merge", "min_started_at": T0 + 15},
        {"activity_id": "proc", "min_started_at": T0 + 12},
    ]
    [total] = db.task_query(None, aggregation=[("count", "task_id"), ("sum", "used.x")])
    assert total == {"count_task_id": 18, "sum_used_x": 25.5}


def test_task_summary(db):
    s = db.task_summary({"workflow_id": "wf-diamond"})
    assert s["count"] == 5
    assert s["status_counts"] == {"FINISHED": 4, "ERROR": 1}
    assert s["time_range"] == {"min_started_at": T0 + 10, "max_ended_at": T0 + 16}
    by = {a["activity_id"]: a for a in s["activity_stats"]}
    assert [a["activity_id"] for a in s["activity_stats"]] == [
        "merge",
        "proc",
        "split",
        "split_part",
    ]
    assert by["proc"] == {
        "activity_id": "proc",
        "count": 2,
        "status_counts": {"FINISHED": 1, "ERROR": 1},
        "avg_duration": 1.5,
        "min_duration": 1.0,
        "max_duration": 2.0,
        "sum_duration": 3.0,
    }
    assert db.task_summary({"task_id": "r1"})["activity_stats"][0]["avg_duration"] is None


def test_telemetry_timeseries(db):
    rows = db.telemetry_timeseries(
        {"workflow_id": "wf-chain"}, ["telemetry_at_end.cpu.percent_all", "generated.loss"]
    )
    assert rows == [
        {"started_at": T0, "task_id": "a1", "activity_id": "load",
         "telemetry_at_end.cpu.percent_all": None, "generated.loss": None},
        {"started_at": T0 + 2, "task_id": "a2", "activity_id": "train",
         "telemetry_at_end.cpu.percent_all": 54.0, "generated.loss": 0.25},
        {"started_at": T0 + 5, "task_id": "a3", "activity_id": "evaluate",
         "telemetry_at_end.cpu.percent_all": None, "generated.loss": None},
    ]  # fmt: skip
    rows = db.telemetry_timeseries({}, ["used.x"], x_field="ended_at", limit=2)
    assert [r["task_id"] for r in rows] == ["a1", "a2"]
    rows = db.telemetry_timeseries({"workflow_id": "wf-misc"}, ["used.x"], x_field="ended_at")
    assert rows[-1]["task_id"] == "r1" and rows[-1]["ended_at"] is None


# --- lineage ---------------------------------------------------------------------------------


def _up(db, task, **kw):
    return [(r["task_id"], r["depth"]) for r in db.get_upstream(task, **kw)]


def _down(db, task, **kw):
    return [(r["task_id"], r["depth"]) for r in db.get_downstream(task, **kw)]


@pytest.mark.parametrize("max_depth", [None, 50])
def test_lineage_walks(db, max_depth):
    kw = {"max_depth": max_depth}
    assert _up(db, "a3", **kw) == [("a2", 1), ("a1", 2)]
    assert _down(db, "a1", **kw) == [("a2", 1), ("a3", 2)]
    assert _down(db, "d1", **kw) == [("d1c", 1), ("d2", 1), ("d3", 1), ("d4", 1)]
    assert _down(db, "d1", kinds=["dataflow"], **kw) == [("d2", 1), ("d3", 1), ("d4", 2)]
    assert _up(db, "d4", **kw) == [("d1", 1), ("d2", 1), ("d3", 1)]
    assert _up(db, "d4", kinds="dataflow", **kw) == [("d2", 1), ("d3", 1), ("d1", 2)]
    assert _up(db, "d4", kinds=["explicit", "parent"], **kw) == [("d1", 1)]
    assert _down(db, "c1", **kw) == [("c2", 1), ("c3", 2)]  # a cycle ends
    assert _up(db, "c1", **kw) == [("c3", 1), ("c2", 2)]
    assert _up(db, "t3", **kw) == [("t1", 1)]
    assert _up(db, "t4", **kw) == []  # started before the value existed
    assert _up(db, "t2", **kw) == []  # trivial values never link
    assert _up(db, "no-such-task", **kw) == []


def test_lineage_depth_bounds_and_nodes(db):
    assert _up(db, "a3", max_depth=1) == [("a2", 1)]
    assert _up(db, "a3", max_depth=0) == []
    assert _down(db, "c1", max_depth=1) == [("c2", 1)]
    [a2] = db.get_upstream("a3", max_depth=1)
    assert a2 == {
        "task_id": "a2",
        "activity_id": "train",
        "workflow_id": "wf-chain",
        "status": "FINISHED",
        "started_at": T0 + 2,
        "ended_at": T0 + 4,
        "depth": 1,
    }
    with pytest.raises(ValueError, match="max_depth"):
        db.get_upstream("a3", max_depth=-1)
    with pytest.raises(ValueError, match="edge kind"):
        db.get_upstream("a3", kinds=["sideways"])


def test_lineage_graph(db):
    g = db.lineage_graph(task_id="a2")
    assert [n["task_id"] for n in g["nodes"]] == ["a1", "a2", "a3"]
    assert g["edges"] == [
        {"src": "a1", "dst": "a2", "kind": "dataflow"},
        {"src": "a2", "dst": "a3", "kind": "dataflow"},
    ]
    g = db.lineage_graph(workflow_id="wf-diamond")
    assert [n["task_id"] for n in g["nodes"]] == ["d1", "d1c", "d2", "d3", "d4"]
    assert [(e["src"], e["dst"], e["kind"]) for e in g["edges"]] == [
        ("d1", "d1c", "parent"),
        ("d1", "d2", "dataflow"),
        ("d1", "d3", "dataflow"),
        ("d1", "d4", "explicit"),
        ("d2", "d4", "dataflow"),
        ("d3", "d4", "dataflow"),
    ]
    g = db.lineage_graph(task_id="c2", depth=1)
    assert [n["task_id"] for n in g["nodes"]] == ["c1", "c2", "c3"]
    assert len(g["edges"]) == 3
    g = db.lineage_graph(workflow_id="wf-misc", depth=0, kinds=["dataflow"])
    assert g["edges"] == [{"src": "t1", "dst": "t3", "kind": "dataflow"}]
    with pytest.raises(ValueError, match="exactly one"):
        db.lineage_graph()


def test_lineage_is_identical_everywhere(dbs):
    calls = [
        lambda d: d.get_upstream("d4"),
        lambda d: d.get_downstream("d1", max_depth=2),
        lambda d: d.lineage_graph(workflow_id="wf-chain", depth=None),
        lambda d: d.lineage_graph(task_id="c3"),
    ]
    for call in calls:
        results = [call(db) for db in dbs.values()]
        assert results[0] == results[1] == results[2]


@pytest.mark.parametrize(
    "sort", [None, [("started_at", -1)], [("used.x", -1)], [("activity_id", 1), ("ended_at", -1)]]
)
def test_pages_of_a_sorted_query_are_the_whole_order(db, sort):
    """A limited query (DuckDB: ordered and cut by row id, then read) pages through exactly
    the unlimited query's records, in its order, with every field."""
    whole = db.task_query({}, sort=sort)
    pages, skip = [], 0
    while True:
        page = db.task_query({}, sort=sort, limit=4, skip=skip)
        pages += page
        if len(page) < 4:
            break
        skip += 4
    assert pages == whole and len(whole) > 8
    assert (
        db.task_query({"used.x": {"$gte": 5}}, sort=sort, limit=2)
        == [
            r
            for r in whole
            if isinstance((r.get("used") or {}).get("x"), int) and r["used"]["x"] >= 5
        ][:2]
    )
