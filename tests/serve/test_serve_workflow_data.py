"""A workflow's data flow, the telemetry time series and the provenance cards over the parity
fixture, on DuckDB and PostgreSQL: exact nodes, edges, rows and card text, and 4xx answers
with a JSON ``detail``."""

from __future__ import annotations

import pytest
from query_helpers import T0
from serve_helpers import load_parity

from provwh.version import __version__


def detail(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    return resp.json()["detail"]


def task_node(tid, activity, status="FINISHED", start=None, end=None, wf="wf-chain"):
    return {"id": f"task:{tid}", "kind": "task", "task_id": tid, "activity_id": activity,
            "workflow_id": wf, "status": status, "started_at": start, "ended_at": end}  # fmt: skip


def test_dataflow_links_tasks_through_their_data(parity_server):
    s = parity_server
    resp = s.get("/api/v1/workflows/wf-chain/dataflow")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "workflow_id": "wf-chain",
        "nodes": [
            {"id": "data:a1/data_path", "kind": "data", "task_id": "a1", "key": "data_path",
             "value": "/data/clean.parquet"},
            {"id": "data:a2/model", "kind": "data", "task_id": "a2", "key": "model",
             "value": "/models/m1.pt"},
            task_node("a1", "load", start=T0, end=T0 + 1),
            task_node("a2", "train", start=T0 + 2, end=T0 + 4),
            task_node("a3", "evaluate", start=T0 + 5, end=T0 + 6),
        ],
        "edges": [
            {"src": "data:a1/data_path", "dst": "task:a2", "kind": "used", "key": "data_path"},
            {"src": "data:a2/model", "dst": "task:a3", "kind": "used", "key": "model"},
            {"src": "task:a1", "dst": "data:a1/data_path", "kind": "generated",
             "key": "data_path"},
            {"src": "task:a2", "dst": "data:a2/model", "kind": "generated", "key": "model"},
        ],
    }  # fmt: skip
    diamond = s.get("/api/v1/workflows/wf-diamond/dataflow").json()
    assert [n["id"] for n in diamond["nodes"]] == [
        "data:d1/shard_a", "data:d1/shard_b", "data:d2/out", "data:d3/out",
        "task:d1", "task:d1c", "task:d2", "task:d3", "task:d4",
    ]  # fmt: skip
    # two data used under the same key by two tasks, two outputs merged by one
    assert [(e["src"], e["dst"], e["kind"], e["key"]) for e in diamond["edges"]] == [
        ("data:d1/shard_a", "task:d2", "used", "shard"),
        ("data:d1/shard_b", "task:d3", "used", "shard"),
        ("data:d2/out", "task:d4", "used", "a"),
        ("data:d3/out", "task:d4", "used", "b"),
        ("task:d1", "data:d1/shard_a", "generated", "shard_a"),
        ("task:d1", "data:d1/shard_b", "generated", "shard_b"),
        ("task:d2", "data:d2/out", "generated", "out"),
        ("task:d3", "data:d3/out", "generated", "out"),
    ]
    misc = s.get("/api/v1/workflows/wf-misc/dataflow").json()
    # trivial values (True, 1, "x", None) link nothing; 42 links t1 to t3 (t4 started first)
    assert [n["id"] for n in misc["nodes"] if n["kind"] == "data"] == ["data:t1/big"]
    assert misc["nodes"][0]["value"] == 42
    assert [(e["src"], e["dst"]) for e in misc["edges"]] == [
        ("data:t1/big", "task:t3"), ("task:t1", "data:t1/big")
    ]  # fmt: skip
    assert len(misc["nodes"]) == 1 + 10
    assert detail(s.get("/api/v1/workflows/nope/dataflow"), 404) == "Workflow not found: nope"


def test_timeseries(parity_server):
    s = parity_server
    body = {
        "filter": {"workflow_id": "wf-chain"},
        "fields": ["telemetry_at_end.cpu.percent_all", "telemetry_at_end.process.memory.rss",
                   "used.x"],
    }  # fmt: skip
    resp = s.post("/api/v1/stats/timeseries", json=body)
    assert resp.status_code == 200, resp.text
    cpu, rss, x = body["fields"]
    assert resp.json() == {
        "rows": [
            {"started_at": T0, "task_id": "a1", "activity_id": "load", cpu: None, rss: None,
             x: 1.5},
            {"started_at": T0 + 2, "task_id": "a2", "activity_id": "train", cpu: 54.0,
             rss: 1004, x: 5},
            {"started_at": T0 + 5, "task_id": "a3", "activity_id": "evaluate", cpu: None,
             rss: None, x: 3},
        ],
        "count": 3,
    }  # fmt: skip
    # x_field (Flowcept's "x" too) and limit: the first rows by x
    body = {"filter": {"campaign_id": "camp-A"}, "fields": ["generated.loss"],
            "x_field": "ended_at", "limit": 2}  # fmt: skip
    got = s.post("/api/v1/stats/timeseries", json=body).json()
    assert got == {
        "rows": [
            {"ended_at": T0 + 1, "task_id": "a1", "activity_id": "load", "generated.loss": None},
            {"ended_at": T0 + 4, "task_id": "a2", "activity_id": "train", "generated.loss": 0.25},
        ],
        "count": 2,
    }
    del body["x_field"]
    got = s.post("/api/v1/stats/timeseries", json={**body, "x": "ended_at"}).json()
    assert [r["task_id"] for r in got["rows"]] == ["a1", "a2"]
    got = s.post("/api/v1/stats/timeseries", json={"fields": ["used.x"], "limit": 5000}).json()
    assert got["count"] == 18


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, "body.fields: Field required"),
        ({"fields": []}, "body.fields: List should have at least 1 item after validation, not 0"),
        ({"fields": ["used.x"], "limit": 0}, "body.limit: Input should be greater than or equal"
         " to 1"),
        ({"fields": ["used.x"], "limit": 5001}, "body.limit: Input should be less than or equal"
         " to 5000"),
        ({"fields": ["used.x"], "bogus": 1}, "body.bogus: Extra inputs are not permitted"),
        ({"fields": ["used.x"], "filter": {"$where": "1"}}, "unknown top-level operator '$where'"),
        ({"fields": "used.x"}, "body.fields: Input should be a valid list"),
    ],
)  # fmt: skip
def test_bad_timeseries_bodies(parity_server, body, expected):
    got = detail(parity_server.post("/api/v1/stats/timeseries", json=body), 400)
    assert got == expected or got.startswith(expected)


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    """The cards ``generate_report``'s code writes, from a DuckDB file of the same fixture."""
    from provwh.query.api import DBAPI
    from provwh.report.service import card_markdown

    folder = tmp_path_factory.mktemp("cards")
    load_parity("duckdb", str(folder / "w.duckdb"), folder / "batches")
    db = DBAPI.from_duckdb(folder / "w.duckdb")
    out = {
        "wf-chain": card_markdown("wf-chain", db=db),
        "camp-A": card_markdown(None, "camp-A", db),
    }
    db.close()
    return out


def test_workflow_and_campaign_cards(parity_server, cards):
    s = parity_server
    resp = s.get("/api/v1/workflows/wf-chain/workflow_card", params={"format": "markdown"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/markdown; charset=utf-8"
    card = resp.text
    assert card == cards["wf-chain"]
    assert card.splitlines()[:3] == [
        "# Workflow Card: chain",
        "",
        f"Built by provwh {__version__} from 6 records: 1 workflow, 3 tasks, 2 object records.",
    ]
    assert "| Tasks | 3 (3 FINISHED) |" in card
    assert "| `obj-1` | 1 | 2 | 14 B | `a2` | 2023-11-14T22:13:26.000Z | — | — |" in card
    assert s.get("/api/v1/workflows/wf-chain/workflow_card").text == card  # markdown: the default
    down = s.post("/api/v1/workflows/wf-chain/reports/workflow-card/download")
    assert down.status_code == 200, down.text
    assert down.headers["content-disposition"] == 'attachment; filename="workflow_card_wf-chain.md"'
    assert (down.headers["content-type"], down.text) == ("text/markdown; charset=utf-8", card)
    camp = s.get("/api/v1/campaigns/camp-A/workflow_card", params={"format": "markdown"})
    assert camp.status_code == 200, camp.text
    assert camp.text == cards["camp-A"]
    assert camp.text.splitlines()[:3] == [
        "# Campaign Workflow Card",
        "",
        f"Built by provwh {__version__} from 12 records: 2 workflows, 8 tasks, 2 object records.",
    ]
    assert "| `wf-diamond` | diamond | ERROR | 2023-11-14T22:13:30.000Z | 7.00 s | 5 | 1 |" in (
        camp.text
    )


@pytest.mark.parametrize(
    "method, path, params, status, expected",
    [
        ("get", "/api/v1/workflows/nope/workflow_card", {}, 404, "Workflow not found: nope"),
        ("post", "/api/v1/workflows/nope/reports/workflow-card/download", {}, 404,
         "Workflow not found: nope"),
        ("get", "/api/v1/campaigns/nope/workflow_card", {}, 404, "Campaign not found: nope"),
        ("get", "/api/v1/workflows/wf-chain/workflow_card", {"format": "pdf"}, 400,
         "Unsupported format: pdf. Use markdown."),
        ("get", "/api/v1/campaigns/camp-A/workflow_card", {"format": "json"}, 400,
         "Unsupported format: json. Use markdown."),
    ],
)  # fmt: skip
def test_bad_card_requests(parity_server, method, path, params, status, expected):
    resp = getattr(parity_server.client, method)(path, params=params)
    assert detail(resp, status) == expected
