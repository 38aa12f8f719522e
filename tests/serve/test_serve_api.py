"""The REST API over the parity fixture, on DuckDB and PostgreSQL: Flowcept's routes and
envelopes, paging in SQL, lineage routes, and 4xx answers with a JSON ``detail``."""

from __future__ import annotations

import orjson
import pytest
from query_helpers import T0

from provwh.version import __version__

# every task, in the default order (start time, then id)
ORDER = "a1 a2 a3 d1 d1c d2 d3 d4 t1 t4 t2 t3 f1 r1 n1 c1 c2 c3".split()


def ids(resp, key="task_id"):
    assert resp.status_code == 200, resp.text
    return [r[key] for r in resp.json()["items"]]


def detail(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    return resp.json()["detail"]


def test_health_and_info(parity_server):
    s = parity_server
    assert s.get("/api/v1/health/live").json() == {"status": "ok"}
    engine = "duckdb" if s.engine == "duckdb" else "postgresql"
    assert s.get("/api/v1/health/ready").json() == {
        "status": "ready",
        "services": {"database": {"engine": engine, "status": "ok"}},
    }
    assert s.get("/api/v1/info").json() == {
        "service": "provwh",
        "version": __version__,
        "engine": engine,
        "writes": "refused",
        "lineage_receiver": "open",
    }


def test_task_list_envelope_order_and_pages(parity_server):
    s = parity_server
    body = s.get("/api/v1/tasks").json()
    assert [t["task_id"] for t in body["items"]] == ORDER
    assert (body["count"], body["limit"], body["offset"], body["next_offset"]) == (18, 100, 0, None)
    pages, offset = [], 0
    while offset is not None:
        body = s.get("/api/v1/tasks", params={"limit": 5, "offset": offset}).json()
        assert body["limit"] == 5 and body["offset"] == offset
        pages.append([t["task_id"] for t in body["items"]])
        offset = body["next_offset"]
    assert pages == [ORDER[0:5], ORDER[5:10], ORDER[10:15], ORDER[15:18]]
    # sorted in SQL, descending, with the default order breaking ties
    got = ids(s.get("/api/v1/tasks", params={"sort": "-started_at", "limit": 4}))
    assert got == ["c3", "c2", "c1", "n1"]
    got = ids(s.get("/api/v1/tasks", params={"sort": "activity_id,-task_id", "limit": 4}))
    assert got == ["t4", "t3", "t2", "c3"]  # consume < cycle


def test_task_list_filters(parity_server):
    s = parity_server
    got = ids(s.get("/api/v1/tasks", params={"workflow_id": "wf-diamond", "status": "FINISHED"}))
    assert got == ["d1", "d1c", "d2", "d4"]
    assert ids(s.get("/api/v1/tasks", params={"parent_task_id": "d1"})) == ["d1c"]
    assert ids(s.get("/api/v1/tasks", params={"campaign_id": "camp-B", "limit": 3})) == [
        "t1", "t4", "t2"
    ]  # fmt: skip
    assert ids(s.get("/api/v1/tasks", params={"task_id": "n1"})) == ["n1"]
    flt = orjson.dumps({"used.x": {"$gte": 5}}).decode()
    assert ids(s.get("/api/v1/tasks", params={"filter_json": flt})) == ["a2", "d2", "r1"]
    flt = orjson.dumps({"activity_id": "consume"}).decode()
    got = ids(s.get("/api/v1/tasks", params={"filter_json": flt, "sort": "-started_at"}))
    assert got == ["t2", "t3", "t4"]
    # filter_json and a parameter both apply
    got = ids(s.get("/api/v1/tasks", params={"filter_json": flt, "task_id": "t4"}))
    assert got == ["t4"]
    body = s.get("/api/v1/tasks", params={"status": "NOPE"}).json()
    assert body == {"items": [], "count": 0, "limit": 100, "offset": 0, "next_offset": None}


def test_one_task_and_by_workflow(parity_server):
    s = parity_server
    task = s.get("/api/v1/tasks/a2").json()
    assert task["task_id"] == "a2" and task["activity_id"] == "train"
    assert task["used"] == {"data_path": "/data/clean.parquet", "lr": 0.01, "x": 5}
    assert task["generated"] == {"model": "/models/m1.pt", "loss": 0.25}
    assert (task["started_at"], task["ended_at"]) == (T0 + 2, T0 + 4)
    assert task["custom_metadata"] == {"owner": "alice", "priority": 2}
    assert task["telemetry_at_end"]["process"]["memory"] == {"rss": 1004, "vms": 9000}
    # a task that arrived in two parts is one record
    d3 = s.get("/api/v1/tasks/d3").json()
    assert (d3["status"], d3["stderr"], d3["ended_at"]) == ("ERROR", "boom", T0 + 14)
    assert s.get("/api/v1/tasks/n1").json()["used"]["big"] == 2**60
    body = s.get("/api/v1/tasks/by_workflow/wf-chain").json()
    assert [t["task_id"] for t in body["items"]] == ["a1", "a2", "a3"]
    assert (body["count"], body["limit"]) == (3, 100)
    got = ids(s.get("/api/v1/tasks/by_workflow/wf-misc", params={"limit": 2, "offset": 7}))
    assert got == ["c1", "c2"]


def test_task_query(parity_server):
    s = parity_server
    body = {
        "filter": {"used.x": {"$gt": 2}},
        "projection": ["task_id"],
        "sort": [{"field": "task_id", "order": -1}],
        "limit": 3,
    }
    got = s.post("/api/v1/tasks/query", json=body).json()
    assert got == {
        "items": [{"task_id": "r1"}, {"task_id": "d2"}, {"task_id": "a3"}],
        "count": 3,
        "limit": 3,
        "offset": 0,
        "next_offset": 3,
    }
    got = s.post("/api/v1/tasks/query", json={**body, "offset": 3}).json()
    assert (got["items"], got["next_offset"]) == ([{"task_id": "a2"}], None)
    got = s.post("/api/v1/tasks/query", json={"filter": {"workflow_id": "wf-chain"}}).json()
    assert [t["task_id"] for t in got["items"]] == ["a1", "a2", "a3"]
    assert got["limit"] == 100
    agg = {
        "filter": {"workflow_id": "wf-diamond"},
        "projection": ["activity_id"],
        "aggregation": [{"operator": "count", "field": "task_id"},
                        {"operator": "max", "field": "ended_at"}],
        "sort": [{"field": "activity_id", "order": 1}],
    }  # fmt: skip
    assert s.post("/api/v1/tasks/query", json=agg).json() == {
        "items": [
            {"activity_id": "merge", "count_task_id": 1, "max_ended_at": T0 + 16},
            {"activity_id": "proc", "count_task_id": 2, "max_ended_at": T0 + 14},
            {"activity_id": "split", "count_task_id": 1, "max_ended_at": T0 + 11},
            {"activity_id": "split_part", "count_task_id": 1, "max_ended_at": T0 + 10.75},
        ],
        "count": 4,
        "limit": 100,
    }
    agg = {
        "filter": {"campaign_id": "camp-A"},
        "projection": ["status"],
        "aggregation": [{"operator": "avg", "field": "used.x"},
                        {"operator": "sum", "field": "used.x"}],
        "sort": [{"field": "status", "order": 1}],
    }  # fmt: skip
    assert s.post("/api/v1/tasks/query", json=agg).json()["items"] == [
        {"status": "ERROR", "avg_used_x": 2.0, "sum_used_x": 2.0},
        {"status": "FINISHED", "avg_used_x": 4.125, "sum_used_x": 16.5},
    ]


def test_workflows(parity_server):
    s = parity_server
    key = "workflow_id"
    assert ids(s.get("/api/v1/workflows"), key) == ["wf-chain", "wf-diamond", "wf-misc"]
    assert ids(s.get("/api/v1/workflows", params={"user": "bob"}), key) == ["wf-diamond"]
    assert ids(s.get("/api/v1/workflows", params={"name": "misc"}), key) == ["wf-misc"]
    got = ids(s.get("/api/v1/workflows", params={"campaign_id": "camp-A", "sort": "-name"}), key)
    assert got == ["wf-diamond", "wf-chain"]
    flt = orjson.dumps({"status": "ERROR"}).decode()
    assert ids(s.get("/api/v1/workflows", params={"filter_json": flt}), key) == ["wf-diamond"]
    body = s.get("/api/v1/workflows", params={"limit": 2}).json()
    assert (body["count"], body["next_offset"]) == (2, 2)
    wf = s.get("/api/v1/workflows/wf-chain").json()
    assert {k: wf[k] for k in ("name", "campaign_id", "user", "status", "started_at")} == {
        "name": "chain",
        "campaign_id": "camp-A",
        "user": "alice",
        "status": "FINISHED",
        "started_at": T0,
    }
    assert wf["ended_at"] == T0 + 7
    assert s.get("/api/v1/workflows/wf-misc").json()["used"] == {"mode": "fast", "n": 3}
    query = {"filter": {"campaign_id": "camp-A"}, "sort": [{"field": "started_at", "order": -1}]}
    got = s.post("/api/v1/workflows/query", json=query).json()
    assert [w["workflow_id"] for w in got["items"]] == ["wf-diamond", "wf-chain"]


def test_campaigns(parity_server):
    s = parity_server
    camp_b = {
        "campaign_id": "camp-B",
        "workflow_count": 1,
        "task_count": 10,
        "users": ["carol"],
        "workflow_names": ["misc"],
        "first_ts": T0 + 19,
        "last_ts": T0 + 43,
    }
    camp_a = {
        "campaign_id": "camp-A",
        "workflow_count": 2,
        "task_count": 8,
        "users": ["alice", "bob"],
        "workflow_names": ["chain", "diamond"],
        "first_ts": T0,
        "last_ts": T0 + 17,
    }
    assert s.get("/api/v1/campaigns").json() == {
        "items": [camp_b, camp_a],
        "count": 2,
        "limit": 100,
    }
    assert s.get("/api/v1/campaigns", params={"limit": 1}).json()["items"] == [camp_b]
    one = s.get("/api/v1/campaigns/camp-A").json()
    assert one["campaign"] == camp_a
    assert [w["workflow_id"] for w in one["workflows"]] == ["wf-chain", "wf-diamond"]
    assert (one["task_summary"]["count"], one["task_summary"]["status_counts"]) == (
        8,
        {"FINISHED": 7, "ERROR": 1},
    )


def test_summary(parity_server):
    s = parity_server
    one = {"count": 1, "status_counts": {"FINISHED": 1}, "avg_duration": 1.0,
           "min_duration": 1.0, "max_duration": 1.0, "sum_duration": 1.0}  # fmt: skip
    assert s.get("/api/v1/stats/tasks/summary", params={"workflow_id": "wf-chain"}).json() == {
        "count": 3,
        "status_counts": {"FINISHED": 3},
        "activity_stats": [
            {"activity_id": "evaluate", **one},
            {"activity_id": "load", **one},
            {
                "activity_id": "train",
                **one,
                "avg_duration": 2.0,
                "min_duration": 2.0,
                "max_duration": 2.0,
                "sum_duration": 2.0,
            },
        ],  # fmt: skip
        "time_range": {"min_started_at": T0, "max_ended_at": T0 + 6},
    }
    flt = orjson.dumps({"status": "RUNNING"}).decode()
    got = s.get("/api/v1/stats/tasks/summary", params={"filter_json": flt}).json()
    assert (got["count"], got["status_counts"]) == (1, {"RUNNING": 1})
    got = s.get("/api/v1/stats/tasks/summary").json()
    assert got["count"] == 18


def test_lineage_routes(parity_server):
    s = parity_server

    def walk(task_id, direction, **params):
        resp = s.get(f"/api/v1/tasks/{task_id}/{direction}", params=params)
        assert resp.status_code == 200, resp.text
        return [(t["task_id"], t["depth"]) for t in resp.json()["items"]]

    assert walk("a3", "upstream") == [("a2", 1), ("a1", 2)]
    assert walk("a3", "upstream", depth=1) == [("a2", 1)]
    assert walk("a1", "downstream") == [("a2", 1), ("a3", 2)]
    assert walk("d4", "upstream", depth=1) == [("d1", 1), ("d2", 1), ("d3", 1)]
    assert walk("d4", "upstream", depth=1, kind="explicit") == [("d1", 1)]
    body = s.get("/api/v1/tasks/a2/upstream").json()
    assert body == {
        "task_id": "a2",
        "depth": None,
        "items": [
            {
                "task_id": "a1",
                "activity_id": "load",
                "workflow_id": "wf-chain",
                "status": "FINISHED",
                "started_at": T0,
                "ended_at": T0 + 1,
                "depth": 1,
            }
        ],
        "count": 1,
    }


@pytest.mark.parametrize(
    "path, params, status, expected",
    [
        ("/api/v1/tasks/nope", {}, 404, "Task not found: nope"),
        ("/api/v1/tasks/x' OR '1'='1", {}, 404, "Task not found: x' OR '1'='1"),
        ("/api/v1/workflows/nope", {}, 404, "Workflow not found: nope"),
        ("/api/v1/campaigns/nope", {}, 404, "Campaign not found: nope"),
        ("/api/v1/tasks/nope/upstream", {}, 404, "Task not found: nope"),
        ("/api/v1/tasks", {"filter_json": "[1]"}, 400,
         "filter_json must decode to a JSON object."),
        ("/api/v1/tasks", {"limit": 0}, 400, "limit: Input should be greater than or equal to 1"),
        ("/api/v1/tasks", {"limit": 1001}, 400,
         "limit: Input should be less than or equal to 1000"),
        ("/api/v1/tasks", {"limit": "ten"}, 400,
         "limit: Input should be a valid integer, unable to parse string as an integer"),
        ("/api/v1/tasks", {"offset": -1}, 400,
         "offset: Input should be greater than or equal to 0"),
        ("/api/v1/tasks", {"sort": "-"}, 400, "sort: empty field name in '-'"),
        ("/api/v1/tasks/a1/upstream", {"depth": 0}, 400,
         "depth: Input should be greater than or equal to 1"),
        ("/api/v1/tasks/a1/upstream", {"kind": "cousin"}, 400,
         "unknown edge kind 'cousin': use explicit, parent or dataflow"),
        ("/api/v1/workflows", {"filter_json": '{"name": {"$regex": 3}}'}, 400,
         "$regex needs a string or a compiled pattern, got 3"),
        ("/api/v1/nothing", {}, 404, "Not Found"),
    ],
)  # fmt: skip
def test_bad_requests_answer_a_detail(parity_server, path, params, status, expected):
    assert detail(parity_server.get(path, params=params), status) == expected


def test_bad_query_bodies(parity_server):
    s = parity_server

    def post(body, **kw):
        return s.post("/api/v1/tasks/query", json=body, **kw)

    assert detail(post({"limit": 5000}), 400) == (
        "body.limit: Input should be less than or equal to 1000"
    )
    assert detail(post({"bogus": 1}), 400) == "body.bogus: Extra inputs are not permitted"
    assert detail(post({"sort": [{"field": "x", "order": 2}]}), 400).startswith(
        "body.sort.0.order: Input should be 1 or -1"
    )
    two = {"projection": ["a", "b"], "aggregation": [{"operator": "sum", "field": "used.x"}]}
    assert detail(post(two), 400) == (
        "When aggregation is provided, projection supports at most one field."
    )
    assert detail(post({"filter": {"$where": "1"}}), 400).startswith(
        "unknown top-level operator '$where'"
    )
    assert detail(post({"filter": {"used.x": {"$near": 1}}}), 400).startswith("unknown operator")
    bad_json = s.post(
        "/api/v1/tasks/query", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert detail(bad_json, 400).startswith("body.")


def test_writes_are_refused_without_a_token(parity_server):
    s = parity_server
    refused = (
        "this server is read-only: start it with --token (or PROVWH_SERVE_TOKEN) to allow writes"
    )
    assert detail(s.client.delete("/api/v1/workflows/wf-chain"), 403) == refused
    assert detail(s.client.delete("/api/v1/campaigns/camp-A"), 403) == refused
    headers = {"Authorization": "Bearer guess"}
    assert detail(s.client.delete("/api/v1/workflows/wf-chain", headers=headers), 403) == refused
    assert ids(s.get("/api/v1/tasks/by_workflow/wf-chain")) == ["a1", "a2", "a3"]


def test_openapi_describes_the_routes(parity_server):
    spec = parity_server.get("/openapi.json").json()
    assert spec["info"] == {
        "title": "provwh",
        "version": __version__,
        "description": spec["info"]["description"],
    }
    assert {
        "/api/v1/health/live",
        "/api/v1/health/ready",
        "/api/v1/info",
        "/api/v1/campaigns",
        "/api/v1/campaigns/{campaign_id}",
        "/api/v1/workflows",
        "/api/v1/workflows/query",
        "/api/v1/workflows/{workflow_id}",
        "/api/v1/tasks",
        "/api/v1/tasks/by_workflow/{workflow_id}",
        "/api/v1/tasks/query",
        "/api/v1/tasks/{task_id}",
        "/api/v1/tasks/{task_id}/upstream",
        "/api/v1/tasks/{task_id}/downstream",
        "/api/v1/stats/tasks/summary",
        "/api/v1/stats/timeseries",
        "/api/v1/stream/tasks",
        "/api/v1/stream/workflows",
        "/api/v1/lineage",
        "/api/v1/workflows/{workflow_id}/dataflow",
        "/api/v1/workflows/{workflow_id}/workflow_card",
        "/api/v1/workflows/{workflow_id}/reports/workflow-card/download",
        "/api/v1/campaigns/{campaign_id}/workflow_card",
        *(
            f"/api/v1/{kind}{path}"
            for kind in ("objects", "datasets", "models")
            for path in (
                "",
                "/query",
                "/{object_id}",
                "/{object_id}/versions/{version}",
                "/{object_id}/history",
                "/{object_id}/download",
                "/{object_id}/versions/{version}/download",
            )
        ),
    } == set(spec["paths"])
    assert set(spec["paths"]["/api/v1/workflows/{workflow_id}"]) == {"get", "delete"}
    assert set(spec["paths"]["/api/v1/objects/{object_id}"]) == {"get", "delete"}
    assert set(spec["paths"]["/api/v1/datasets/{object_id}"]) == {"get"}
    assert set(spec["paths"]["/api/v1/stats/timeseries"]) == {"post"}
    assert set(spec["paths"]["/api/v1/lineage"]) == {"post"}
