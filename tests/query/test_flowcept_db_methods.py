"""Flowcept 1.0.3's DBAPI methods that came with issue 16, called as Flowcept users write them
(``Flowcept.db.<method>(...)``), on PostgreSQL and on DuckDB, with exact answers."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
import torch
from query_helpers import MODEL_V0, MODEL_V1, T0, parity_batches, write_batches

from provwh import Flowcept
from provwh.core.model import TaskObject, WorkflowObject
from provwh.query.api import DBAPI
from provwh.query.dao import DocumentDAO

ENGINES = ("duckdb", "postgres")


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


def _configure(engine, db, set_env):
    """Point the settings (so ``Flowcept.db``) at ``db``'s database."""
    if engine == "duckdb":
        set_env(PROVWH_DUCKDB_PATH=db.backend.path, PROVWH_POSTGRES_URL="")
    else:
        set_env(PROVWH_POSTGRES_URL=db.backend.target.url, PROVWH_DUCKDB_ENABLED="false")
    assert Flowcept.db.engine == db.engine
    return Flowcept.db


@pytest.fixture
def loaded(engine, make_db, tmp_path, set_env):
    """``Flowcept.db`` on a database holding the parity fixture."""
    return _configure(engine, make_db(engine, write_batches(tmp_path / "s", parity_batches())),
                      set_env)  # fmt: skip


@pytest.fixture
def empty(engine, make_db, set_env):
    """``Flowcept.db`` on an empty database."""
    return _configure(engine, make_db(engine), set_env)


def _task(task_id, parent=None, wf="wf-t", activity="step", start=0.0, **fields):
    task = TaskObject(task_id=task_id, workflow_id=wf, activity_id=activity,
                      started_at=T0 + start, ended_at=T0 + start + 1, status="FINISHED",
                      **fields)  # fmt: skip
    if parent is not None:
        task.parent_task_id = parent
    Flowcept.db.insert_or_update_task(task)


# --- campaigns and agents ----------------------------------------------------------------------


def test_derive_campaigns(loaded):
    camp_b = {
        "campaign_id": "camp-B",
        "workflow_count": 1,
        "task_count": 10,
        "users": ["carol"],
        "workflow_names": ["misc"],
        "first_ts": T0 + 20,  # the workflows carry no utc_timestamp: tasks' times only
        "last_ts": T0 + 43,
    }
    camp_a = {
        "campaign_id": "camp-A",
        "workflow_count": 2,
        "task_count": 8,
        "users": ["alice", "bob"],
        "workflow_names": ["chain", "diamond"],
        "first_ts": T0,
        "last_ts": T0 + 16,
    }
    assert Flowcept.db.derive_campaigns() == [camp_b, camp_a]
    assert Flowcept.db.derive_campaigns(campaign_id="camp-A") == [camp_a]
    assert Flowcept.db.derive_campaigns("nope") == []


def test_derive_campaigns_uses_the_workflows_utc_timestamp(empty):
    wf = WorkflowObject(workflow_id="w1", name="one")
    wf.campaign_id, wf.user, wf.utc_timestamp = "c1", "ann", T0 - 5
    Flowcept.db.insert_or_update_workflow(wf)
    Flowcept.db.insert_or_update_workflow(
        {"workflow_id": "w2", "campaign_id": "c2", "utc_timestamp": T0 + 50, "user": ""}
    )
    Flowcept.db.insert_or_update_workflow({"workflow_id": "w3", "name": "no campaign"})
    _task("t1", wf="w1", campaign_id="c1", start=3)
    _task("t2", wf="w1", start=4)  # no campaign_id: not counted, as in Flowcept
    assert Flowcept.db.derive_campaigns() == [
        {"campaign_id": "c2", "workflow_count": 1, "task_count": 0, "users": [],
         "workflow_names": [], "first_ts": T0 + 50, "last_ts": T0 + 50},
        {"campaign_id": "c1", "workflow_count": 1, "task_count": 1, "users": ["ann"],
         "workflow_names": ["one"], "first_ts": T0 - 5, "last_ts": T0 + 4},
    ]  # fmt: skip


def test_derive_agents(empty):
    _task("a1", agent_id="planner", campaign_id="c1", start=0)
    _task("a2", agent_id="planner", activity="plan", wf="wf-2", source_agent_id="user", start=5)
    _task("a3", agent_id="critic", activity="review", registered_at=T0 + 20, start=2)
    _task("a4", agent_id="train_agent_id", start=1)  # Flowcept's placeholder id: left out
    _task("a5", start=9)  # no agent
    planner = {
        "agent_id": "planner",
        "task_count": 2,
        "activities": ["plan", "step"],
        "source_agent_ids": ["user"],
        "campaign_ids": ["c1"],
        "workflow_ids": ["wf-2", "wf-t"],
        "last_active": T0 + 6,
        "name": None,
        "workflow_id": None,
        "registered_at": T0,
    }
    critic = {
        "agent_id": "critic",
        "task_count": 1,
        "activities": ["review"],
        "source_agent_ids": [],
        "campaign_ids": [],
        "workflow_ids": ["wf-t"],
        "last_active": T0 + 20,
        "name": None,
        "workflow_id": None,
        "registered_at": T0 + 20,
    }
    assert Flowcept.db.derive_agents() == [critic, planner]
    assert Flowcept.db.derive_agents(filter={"agent_id": "planner"}) == [planner]
    only_c1 = Flowcept.db.derive_agents({"campaign_id": "c1"})
    assert [(a["agent_id"], a["task_count"], a["workflow_ids"]) for a in only_c1] == [
        ("planner", 1, ["wf-t"])
    ]
    assert Flowcept.db.derive_agents({"agent_id": "nobody"}) == []


# --- charts --------------------------------------------------------------------------------------


def test_resolve_chart_data_groups_and_metrics(loaded):
    spec = {
        "source": "tasks",
        "filter": {"workflow_id": "wf-diamond"},
        "group_by": "activity_id",
        "metrics": [
            {"field": "elapsed", "agg": "avg"},
            {"field": "used.x", "agg": "max"},
            {"field": "used.x", "agg": "sum"},
            {"agg": "count"},
        ],
    }
    assert Flowcept.db.resolve_chart_data(spec) == {
        "rows": [
            {"activity_id": "merge", "avg_elapsed": 1.0, "max_used.x": None, "sum_used.x": 0,
             "count": 1},
            {"activity_id": "proc", "avg_elapsed": 1.5, "max_used.x": 7.0, "sum_used.x": 9.0,
             "count": 2},
            {"activity_id": "split", "avg_elapsed": 1.0, "max_used.x": None, "sum_used.x": 0,
             "count": 1},
            {"activity_id": "split_part", "avg_elapsed": 0.5, "max_used.x": None,
             "sum_used.x": 0, "count": 1},
        ],
        "count": 4,
    }  # fmt: skip
    by_status = Flowcept.db.resolve_chart_data(
        {"group_by": "status", "limit": 2}, context={"campaign_id": "camp-B"}
    )
    assert by_status == {
        "rows": [{"status": "ERROR", "count": 1}, {"status": "FINISHED", "count": 8}],
        "count": 2,
    }
    whole = Flowcept.db.resolve_chart_data(
        {"metrics": [{"field": "ended_at", "agg": "max"}], "filter": {"workflow_id": "wf-chain"}}
    )
    assert whole == {"rows": [{"group": None, "max_ended_at": T0 + 6}], "count": 1}
    workflows = Flowcept.db.resolve_chart_data({"source": "workflows", "group_by": "campaign_id"})
    assert workflows["rows"] == [{"campaign_id": "camp-A", "count": 2},
                                 {"campaign_id": "camp-B", "count": 1}]  # fmt: skip
    with pytest.raises(ValueError, match="unknown metric agg 'median'"):
        Flowcept.db.resolve_chart_data({"metrics": [{"field": "x", "agg": "median"}]})


def test_resolve_chart_data_series_records_and_sizes(loaded):
    series = Flowcept.db.resolve_chart_data(
        {"x": "started_at", "y": ["used.x"], "filter": {"workflow_id": "wf-chain"}, "limit": 2}
    )
    assert series == {
        "rows": [
            {"started_at": T0, "task_id": "a1", "activity_id": "load", "used.x": 1.5},
            {"started_at": T0 + 2, "task_id": "a2", "activity_id": "train", "used.x": 5},
        ],
        "count": 2,
    }
    records = Flowcept.db.resolve_chart_data(
        {"filter": {"activity_id": "consume"}, "sort": [{"field": "ended_at", "order": -1}]},
        context={"workflow_id": "wf-misc"},
    )
    assert [r["task_id"] for r in records["rows"]] == ["t3", "t2", "t4"]
    assert records["count"] == 3
    sizes = Flowcept.db.resolve_chart_data({"source": "collection_sizes"})
    assert sizes == {
        "rows": [
            {"collection": "tasks", "sum_bytes": 4898},
            {"collection": "objects", "sum_bytes": 365},
            {"collection": "workflows", "sum_bytes": 502},
        ],
        "count": 3,
    }
    chain = Flowcept.db.resolve_chart_data(
        {"source": "collection_sizes", "filter": {"workflow_id": "wf-chain"}}
    )
    assert [r["sum_bytes"] for r in chain["rows"]] == [1485, 365, 167]


# --- per-workflow data ------------------------------------------------------------------------


def test_workflow_domain_data_schema(loaded):
    snapshot = {"fields": {"loss": {"type": "float"}, "epoch": {"type": "int"}}, "version": 1}
    assert Flowcept.db.save_workflow_domain_data_schema("wf-chain", snapshot) is True
    assert Flowcept.db.get_workflow_domain_data_schema("wf-chain") == snapshot
    newer = {"fields": {"loss": {"type": "float"}}, "version": 2}
    Flowcept.db.save_workflow_domain_data_schema("wf-chain", newer)
    assert Flowcept.db.get_workflow_domain_data_schema("wf-chain") == newer  # replaced whole
    wf = Flowcept.db.get_workflow_object("wf-chain")
    assert wf.workflow_domain_data_schema == newer
    assert (wf.name, wf.status, wf.ended_at) == ("chain", "FINISHED", T0 + 7)  # rest kept
    assert Flowcept.db.get_workflow_domain_data_schema("wf-diamond") is None
    assert Flowcept.db.get_workflow_domain_data_schema("nope") is None
    # a workflow not stored yet gets a record; its own record merges into it later
    Flowcept.db.save_workflow_domain_data_schema("wf-later", {"version": 0})
    Flowcept.db.insert_or_update_workflow(WorkflowObject(workflow_id="wf-later", name="later"))
    assert Flowcept.db.workflow_query({"workflow_id": "wf-later"}) == [
        {"type": "workflow", "workflow_id": "wf-later", "name": "later",
         "workflow_domain_data_schema": {"version": 0}}
    ]  # fmt: skip


def test_node_positions(loaded):
    assert Flowcept.db.get_node_positions("wf-chain", "dataflow") == {}
    first = {"a1": {"x": 1.5, "y": -2.0}, "a2": {"x": 10, "y": 20}}
    assert Flowcept.db.save_node_positions("wf-chain", "dataflow", first) is True
    assert Flowcept.db.save_node_positions("wf-chain", "activity", {"load": {"x": 0, "y": 0}})
    assert Flowcept.db.get_node_positions("wf-chain", "dataflow") == first
    moved = {"a3": {"x": 5, "y": 5}}
    Flowcept.db.save_node_positions("wf-chain", "dataflow", moved)
    assert Flowcept.db.get_node_positions("wf-chain", "dataflow") == moved  # replaced
    assert Flowcept.db.get_node_positions("wf-chain", "activity") == {"load": {"x": 0, "y": 0}}
    assert Flowcept.db.get_node_positions("wf-chain", "task") == {}
    assert Flowcept.db.get_node_positions("wf-diamond", "dataflow") == {}
    stored = Flowcept.db.workflow_query({"workflow_id": "wf-chain"}, projection=["node_positions"])
    assert stored == [
        {"node_positions": {"dataflow": moved, "activity": {"load": {"x": 0, "y": 0}}}}
    ]


# --- task trees ---------------------------------------------------------------------------------


def _tree():
    """r1 -> (c1 -> (g1 -> h1, g2), c2 -> g3); r2; x1 (other workflow) under c2."""
    _task("r1", activity="root", start=0, used={"lr": 0.1})
    _task("c1", "r1", activity="child", start=1, generated={"loss": 0.5})
    _task("c2", "r1", activity="child", start=2, generated={"loss": 0.25})
    _task("g1", "c1", activity="leaf", start=3, used={"i": 1})
    _task("g2", "c1", activity="leaf", start=4, used={"i": 2})
    _task("g3", "c2", activity="leaf", start=5, used={"i": 3})
    _task("h1", "g1", activity="deep", start=6)
    _task("r2", activity="root", start=7)
    _task("x1", "c2", wf="wf-other", activity="remote", start=8)


def test_get_tasks_recursive(empty):
    _tree()
    tasks = Flowcept.db.get_tasks_recursive("wf-t")
    assert [(t["task_id"], t["depth"], t["ancestor_ids"]) for t in tasks] == [
        ("r1", 0, []),
        ("c1", 1, [{"root": "r1"}]),
        ("c2", 1, [{"root": "r1"}]),
        ("g1", 2, [{"root": "r1"}, {"child": "c1"}]),
        ("g2", 2, [{"root": "r1"}, {"child": "c1"}]),
        ("h1", 3, [{"root": "r1"}, {"child": "c1"}, {"leaf": "g1"}]),
        ("g3", 2, [{"root": "r1"}, {"child": "c2"}]),
        ("x1", 2, [{"root": "r1"}, {"child": "c2"}]),
        ("r2", 0, []),
    ]
    assert tasks[1]["generated"] == {"loss": 0.5} and tasks[7]["workflow_id"] == "wf-other"
    depth_2 = Flowcept.db.get_tasks_recursive("wf-t", max_depth=2)
    assert [t["task_id"] for t in depth_2] == ["r1", "c1", "c2", "g1", "g2", "g3", "x1", "r2"]
    depth_0 = Flowcept.db.get_tasks_recursive("wf-t", max_depth=0)
    assert [t["task_id"] for t in depth_0] == ["r1", "r2"]
    assert Flowcept.db.get_tasks_recursive("wf-other") == []  # x1 has a parent: no root
    assert Flowcept.db.get_tasks_recursive("nope") == []


def test_get_tasks_recursive_with_a_mapping(empty):
    _tree()
    Flowcept.db.insert_or_update_task(
        TaskObject(task_id="cfg", workflow_id="wf-cfg", activity_id="config",
                   used={"batch": 32}, custom_metadata={"gpu": "a100"})
    )  # fmt: skip
    mapping = {
        "activity_id": {
            "child": {
                "loss": "task['generated']['loss']",
                "root_lr": "parent['used']['lr']",
                "kind": "training",
                "extend": [{"a": 1}, {"b": 2}],
                "task['activity_id'] + '_of'": "task['parent_task_id']",
                "query": {"filter": {"activity_id": "leaf"}, "projection": ["task_id"]},
            },
            "leaf": {
                "i": "task['used']['i']",
                "upstream_loss": "parent['generated']['loss']",
                "root": "primogenitor['task_id']",
                "via": "grandparent['activity_id']",
                "query": {
                    "filter": {"workflow_id": "wf-cfg"},
                    "projection": ["used", "custom_metadata"],
                },
            },
        },
        "subtype": {},
    }
    tasks = Flowcept.db.get_tasks_recursive("wf-t", max_depth=2, mapping=mapping)
    leaves = [{"task_id": "g1"}, {"task_id": "g2"}, {"task_id": "g3"}]
    chars = {t["task_id"]: t.get("custom_characterization") for t in tasks}
    assert chars == {
        "r1": None,  # roots are not characterized (as in Flowcept)
        "c1": {"loss": 0.5, "root_lr": 0.1, "kind": "training", "a": 1, "b": 2,
               "child_of": "r1", "query_result": leaves},
        "c2": {"loss": 0.25, "root_lr": 0.1, "kind": "training", "a": 1, "b": 2,
               "child_of": "r1", "query_result": leaves},
        "g1": {"i": 1, "upstream_loss": 0.5, "root": "r1", "via": "root", "batch": 32,
               "gpu": "a100"},
        "g2": {"i": 2, "upstream_loss": 0.5, "root": "r1", "via": "root", "batch": 32,
               "gpu": "a100"},
        "g3": {"i": 3, "upstream_loss": 0.25, "root": "r1", "via": "root", "batch": 32,
               "gpu": "a100"},
        "x1": None,
        "r2": None,
    }  # fmt: skip


def test_dump_tasks_to_file_recursive(empty, tmp_path):
    _tree()
    out = str(tmp_path / "tree.parquet")
    assert Flowcept.db.dump_tasks_to_file_recursive("wf-t", output_file=out, max_depth=1) is None
    table = pq.read_table(out)
    assert table.column_names == [
        "type", "task_id", "workflow_id", "activity_id", "used", "started_at", "ended_at",
        "status", "ancestor_ids", "depth", "parent_task_id", "generated",
    ]  # fmt: skip
    rows = table.to_pylist()
    assert [(r["task_id"], r["depth"], r["ancestor_ids"], r["used"], r["generated"])
            for r in rows] == [
        ("r1", 0, "[]", '{"lr":0.1}', None),
        ("c1", 1, '[{"root":"r1"}]', None, '{"loss":0.5}'),
        ("c2", 1, '[{"root":"r1"}]', None, '{"loss":0.25}'),
        ("r2", 0, "[]", None, None),
    ]  # fmt: skip
    assert rows[1]["started_at"] == T0 + 1 and rows[1]["parent_task_id"] == "r1"


# --- data objects -------------------------------------------------------------------------------


def test_model_and_dataset_aliases(loaded):
    latest = {
        "object_id": "obj-1",
        "version": 1,
        "created_at": T0 + 4,
        "updated_at": T0 + 6,
        "prev_version": 0,
        "task_id": "a2",
        "workflow_id": "wf-chain",
        "object_type": "ml_model",
        "object_size_bytes": 14,
        "data_sha256": "246ca6a096e3011ec12f7ac642e8bddef205fca6f4ae1e2e2d97bc73609e5d25",
        "data_hash_algo": "sha256",
        "data": MODEL_V1,
    }
    assert Flowcept.db.ml_model_query({"object_id": "obj-1"}) == [latest]
    assert Flowcept.db.dataset_query({"object_type": "ml_model"}) == [latest]
    assert Flowcept.db.dataset_query({"object_type": "dataset"}) == []
    assert Flowcept.db.get_ml_model("obj-1").to_dict() == latest
    assert Flowcept.db.get_ml_model("obj-1", version=0).data == MODEL_V0
    assert Flowcept.db.get_dataset("obj-1", version=1).data == MODEL_V1
    versions = Flowcept.db.list_object_versions("obj-1")
    assert [(v["version"], v["object_size_bytes"], v["prev_version"]) for v in versions] == [
        (1, 14, 0),
        (0, 16, None),
    ]
    assert "data" not in versions[0]
    with pytest.raises(ValueError, match="Object not found for object_id=nope"):
        Flowcept.db.get_ml_model("nope")


def test_load_torch_model(empty):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    oid = Flowcept.db.insert_or_update_torch_model(net, object_id="net", workflow_id="wf-m",
                                                   custom_metadata={"epoch": 4})  # fmt: skip
    fresh = torch.nn.Linear(3, 2)
    assert not torch.equal(fresh.weight, net.weight)
    doc = Flowcept.db.load_torch_model(fresh, oid)
    assert torch.equal(fresh.weight, net.weight) and torch.equal(fresh.bias, net.bias)
    saved = io.BytesIO()
    torch.save(net.state_dict(), saved)
    assert doc["data"] == saved.getvalue()
    assert (doc["object_id"], doc["version"], doc["object_type"], doc["custom_metadata"]) == (
        "net",
        0,
        "ml_model",
        {"epoch": 4, "class": "Linear"},
    )
    assert fresh._flowcept_model_object == {k: v for k, v in doc.items() if k != "data"}
    with pytest.raises(ValueError, match="Object not found for object_id=nope"):
        Flowcept.db.load_torch_model(fresh, "nope")


def test_delete_object_keys(empty):
    Flowcept.db.insert_or_update_object(b"a0", object_id="a", workflow_id="w", type="dataset")
    Flowcept.db.insert_or_update_object(b"a1", object_id="a", control_version=True)
    Flowcept.db.insert_or_update_object(b"b", object_id="b", workflow_id="w")
    Flowcept.db.insert_or_update_object(b"c", object_id="c", workflow_id="v")
    assert Flowcept.db.delete_object_keys("object_id", ["a", "zzz"]) is True
    left = Flowcept.db.query(collection="object_history", projection=["object_id", "version"])
    assert left == [{"object_id": "b", "version": 0}, {"object_id": "c", "version": 0}]
    assert Flowcept.db.delete_object_keys("workflow_id", "w") is True  # one value, as Flowcept
    assert [o["object_id"] for o in Flowcept.db.blob_object_query({})] == ["c"]


# --- the database ---------------------------------------------------------------------------------


def test_db_liveness_tests(engine, empty):
    expected = {"duckdb": True} if engine == "duckdb" else {"postgres": True}
    assert DBAPI.db_liveness_tests() == expected
    assert Flowcept.db.db_liveness_tests() == expected


def test_query_collections(loaded):
    tasks = Flowcept.db.query({"activity_id": "proc"}, collection="tasks", projection=["status"])
    assert tasks == [{"status": "FINISHED"}, {"status": "ERROR"}]
    workflows = Flowcept.db.query({"campaign_id": "camp-A"}, projection=["workflow_id", "name"],
                                  collection="workflows")  # fmt: skip
    assert workflows == [{"workflow_id": "wf-chain", "name": "chain"},
                         {"workflow_id": "wf-diamond", "name": "diamond"}]  # fmt: skip
    objects = Flowcept.db.query(collection="objects", projection=["version"], filter={})
    assert objects == [{"version": 1}]
    history = Flowcept.db.query(collection="object_history", projection=["version", "data"])
    assert history == [{"version": 0, "data": MODEL_V0}, {"version": 1, "data": MODEL_V1}]
    with pytest.raises(ValueError, match="unknown collection 'dashboards'"):
        Flowcept.db.query(collection="dashboards")


def test_get_dao_instance(loaded):
    dao = DBAPI.get_dao_instance()
    assert isinstance(dao, DocumentDAO) and dao.db is Flowcept.db
    assert Flowcept.db.get_dao_instance().db is Flowcept.db
    assert dao.liveness_test() is True
    assert (dao.count_tasks(), dao.count_workflows(), dao.count_objects()) == (18, 3, 1)
    assert [t["task_id"] for t in dao.task_query({"workflow_id": "wf-chain"})] == ["a1", "a2", "a3"]
    assert dao.query({"user": "bob"}, ["name"], 0, None, None, True, "workflows") == [
        {"name": "diamond"}
    ]
    assert dao.workflow_query({"name": "misc"})[0]["workflow_id"] == "wf-misc"
    assert [o["version"] for o in dao.object_query({"object_id": "obj-1"})] == [1]
    assert dao.get_blob_object_doc("obj-1", version=0)["data"] == MODEL_V0
    meta = dao.get_blob_object_metadata_doc("obj-1")
    assert meta["version"] == 1 and "data" not in meta
    assert dao.get_blob_object_doc("nope") is None
    assert [v["version"] for v in dao.list_object_versions("obj-1")] == [1, 0]
    assert dao.insert_one_task({"task_id": "new", "workflow_id": "wf-chain"}) == "new"
    assert dao.insert_and_update_many_tasks([{"task_id": "new", "status": "FINISHED"},
                                             {"task_id": "new2"}]) is True  # fmt: skip
    assert [(t["task_id"], t.get("status")) for t in dao.task_query({"task_id": {"$in": [
        "new", "new2"]}})] == [("new", "FINISHED"), ("new2", None)]  # fmt: skip
    assert (
        dao.save_workflow_domain_data_schema("wf-misc", {"workflow_domain_data_schema": {"v": 1}})
        is True
    )
    assert Flowcept.db.get_workflow_domain_data_schema("wf-misc") == {"v": 1}
    assert dao.derive_campaigns("camp-B")[0]["task_count"] == 10
    assert dao.task_summary({"workflow_id": "wf-chain"})["count"] == 4
    assert dao.to_df("workflows").shape[0] == 3
