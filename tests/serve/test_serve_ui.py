"""The web UI in a real headless Chromium (``--dump-dom``, ``--screenshot``) and over HTTP,
on DuckDB and PostgreSQL: the overview lists the workflows by name, a workflow page shows
its activities and tasks, a task page its values and lineage; values are escaped."""

from __future__ import annotations

import re

import pytest
from serve_helpers import colors_of, dump_dom, screenshot


def rows_of(page: str, heading: str) -> list[list[str]]:
    """The cells (text, tags removed) of the first table after ``<h2>heading</h2>``."""
    after = page.split(f"<h2>{heading}</h2>", 1)[1].split("<h2>", 1)[0]
    if "<tbody>" not in after:
        assert '<p class="muted">None.</p>' in after
        return []
    body = after.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
        for r in rows
    ]


def test_overview_in_chromium_lists_the_workflows_by_name(parity_server, tmp_path):
    dom = dump_dom(parity_server.url + "/", tmp_path / "profile")
    assert "<title>Overview · provwh</title>" in dom
    for wf_id, name in (("wf-chain", "chain"), ("wf-diamond", "diamond"), ("wf-misc", "misc")):
        assert f'<a href="/workflows/{wf_id}">{name}</a>' in dom
    recent = rows_of(dom, "Recent workflows")
    assert [(r[0], r[1], r[2], r[3]) for r in recent] == [
        ("misc", "camp-B", "carol", "RUNNING"),
        ("diamond", "camp-A", "bob", "ERROR"),
        ("chain", "camp-A", "alice", "FINISHED"),
    ]
    assert [r[0] for r in rows_of(dom, "Running workflows")] == ["misc"]
    assert [r[:3] for r in rows_of(dom, "Recent campaigns")] == [
        ["camp-B", "1", "10"],
        ["camp-A", "2", "8"],
    ]
    cards = re.findall(r'<div class="n">(\d+)</div><div class="label">(\w+)</div>', dom)
    assert cards == [("3", "workflows"), ("18", "tasks"), ("2", "campaigns"), ("13", "activities")]


def test_workflow_page_in_chromium_shows_its_activities(parity_server, tmp_path):
    dom = dump_dom(parity_server.url + "/workflows/wf-diamond", tmp_path / "profile")
    assert "<h1>Workflow diamond</h1>" in dom
    activities = rows_of(dom, "Activities")
    assert [(r[0], r[1], r[3], r[6]) for r in activities] == [
        ("merge", "1", "1 s", "1 s"),
        ("proc", "2", "1.5 s", "3 s"),
        ("split", "1", "1 s", "1 s"),
        ("split_part", "1", "0.5 s", "0.5 s"),
    ]
    tasks = rows_of(dom, "Tasks")
    assert [(r[0], r[1], r[2]) for r in tasks] == [
        ("d1", "split", "FINISHED"),
        ("d1c", "split_part", "FINISHED"),
        ("d2", "proc", "FINISHED"),
        ("d3", "proc", "ERROR"),
        ("d4", "merge", "FINISHED"),
    ]
    assert tasks[0][3] == "2023-11-14 22:13:30"
    assert '<a href="/tasks/d4">d4</a>' in dom


def test_screenshot_is_not_blank(parity_server, tmp_path):
    png = screenshot(
        parity_server.url + "/workflows/wf-diamond", tmp_path / "wf.png", tmp_path / "profile"
    )
    colors, top_share = colors_of(png)
    assert colors >= 50, colors  # text, badges, bars: many colors
    assert top_share < 0.9, top_share  # the background is not all there is
    assert png.stat().st_size > 10_000


def test_workflow_page_filters_sorts_and_pages_in_sql(parity_server):
    s = parity_server
    page = s.get("/workflows/wf-misc", params={"activity": "consume"}).text
    assert [r[0] for r in rows_of(page, "Tasks")] == ["t4", "t2", "t3"]
    page = s.get("/workflows/wf-misc", params={"activity": "consume", "sort": "-started"}).text
    assert [r[0] for r in rows_of(page, "Tasks")] == ["t2", "t3", "t4"]
    page = s.get("/workflows/wf-misc", params={"status": "RUNNING"}).text
    assert [r[0] for r in rows_of(page, "Tasks")] == ["r1"]
    page = s.get("/workflows/wf-misc", params={"page": 2}).text
    assert rows_of(page, "Tasks") == []
    assert (
        '<div class="pager"><span>none on this page</span> <a href="/workflows/wf-misc?page=1'
        in page
    )
    page = s.get("/workflows", params={"q": "DIA"}).text
    assert re.findall(r'<a href="/workflows/([^"?]+)">', page) == ["wf-diamond"]
    page = s.get("/workflows", params={"sort": "name"}).text
    assert re.findall(r'<a href="/workflows/([^"?]+)">', page) == [
        "wf-chain",
        "wf-diamond",
        "wf-misc",
    ]


def test_task_page_shows_values_status_and_lineage(parity_server):
    s = parity_server
    page = s.get("/tasks/a2").text
    assert "<h1>Task train</h1>" in page
    assert rows_of(page, "Used") == [
        ["data_path", "/data/clean.parquet"],
        ["lr", "0.01"],
        ["x", "5"],
    ]
    assert rows_of(page, "Generated") == [["loss", "0.25"], ["model", "/models/m1.pt"]]
    assert rows_of(page, "Upstream") == [["a1", "load", "FINISHED", "1"]]
    assert rows_of(page, "Downstream") == [["a3", "evaluate", "FINISHED", "1"]]
    assert '<a href="/workflows/wf-chain">chain</a>' in page
    page = s.get("/tasks/a3", params={"depth": 2}).text
    assert rows_of(page, "Upstream") == [
        ["a2", "train", "FINISHED", "1"],
        ["a1", "load", "FINISHED", "2"],
    ]
    page = s.get("/tasks/d3").text
    assert '<div class="error-box"><pre>boom</pre></div>' in page
    page = s.get("/tasks/d1").text
    assert rows_of(page, "Children") == [["d1c", "split_part", "FINISHED", "0.5 s"]]
    assert [r[0] for r in rows_of(page, "Downstream")] == ["d1c", "d2", "d3", "d4"]
    page = s.get("/tasks/d1c").text
    assert '<a href="/tasks/d1">d1</a>' in page  # its parent


def test_campaign_pages(parity_server):
    s = parity_server
    page = s.get("/campaigns").text
    assert re.findall(r'<a href="/campaigns/([^"]+)">', page) == ["camp-B", "camp-A"]
    page = s.get("/campaigns/camp-A").text
    assert [r[0] for r in rows_of(page, "Workflows")] == ["chain", "diamond"]


@pytest.mark.parametrize(
    "path, detail",
    [
        ("/workflows/nope", "Workflow not found: nope"),
        ("/tasks/nope", "Task not found: nope"),
        ("/campaigns/nope", "Campaign not found: nope"),
    ],
)
def test_unknown_ids_are_404_pages(parity_server, path, detail):
    resp = parity_server.get(path)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("text/html")
    assert f'<div class="error-box">{detail}</div>' in resp.text


def test_bad_parameters_are_400_pages(parity_server):
    resp = parity_server.get("/workflows", params={"page": 0})
    assert resp.status_code == 400
    assert '<div class="error-box">page: Input should be greater than or equal to 1</div>' in (
        resp.text
    )


def test_style_sheet_is_served_by_provwh(parity_server):
    resp = parity_server.get("/static/style.css")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/css")
    assert resp.text.startswith("/* provwh web UI")
    page = parity_server.get("/").text
    assert re.findall(r'(?:src|href)="(https?:)?//', page) == []  # nothing from elsewhere


def test_values_are_escaped(database, start_server):
    server = start_server(database("duckdb", loaded=False))
    event = {
        "eventType": "START",
        "eventTime": "2024-03-01T12:00:00Z",
        "run": {
            "runId": "run<1>",
            "facets": {
                "parent": {
                    "run": {"runId": "wf&<2>"},
                    "job": {"namespace": "n", "name": "<img src=x onerror=alert(1)>"},
                }
            },
        },
        "job": {"namespace": "n", "name": "<script>alert(1)</script>"},
        "inputs": [{"namespace": "file", "name": '/a/"quoted"\'.csv'}],
    }
    assert server.post("/api/v1/lineage", json=event).json()["loaded"] == 1
    page = server.get("/").text
    assert "<img src=x" not in page and "<script>alert" not in page
    assert '<a href="/workflows/wf%26%3C2%3E">&lt;img src=x onerror=alert(1)&gt;</a>' in page
    page = server.get("/tasks/run%3C1%3E").text
    assert "<script>alert" not in page
    assert "<h1>Task &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in page
    assert "<code>/a/&quot;quoted&quot;&#x27;.csv</code>" in page
