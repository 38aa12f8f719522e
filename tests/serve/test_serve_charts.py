"""The workflow and task pages' charts (vendored Apache ECharts, data from ``/ui-data/``) in a
real headless Chromium, on DuckDB and PostgreSQL: the figures are drawn (``data-drawn`` and
the counts the script sets, canvases present), a screenshot shows them, every script and style
comes from the server itself, and a workflow of more tasks than the PDF report's limits is
drawn per activity with binned telemetry (exact counts)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from serve_helpers import Server, chromium, colors_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "query"))
from pg_support import PgDatabases  # noqa: E402
from query_helpers import _task, load, telemetry, write_batches  # noqa: E402

from provwh.report.pdf_charts import GANTT_TASK_ROWS, GRAPH_TASK_NODES  # noqa: E402

BUDGET = "--virtual-time-budget=10000"  # scripts, fetches and drawing finish in virtual time


def _chromium(args: list[str], profile: Path) -> str:
    import os
    import subprocess

    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", BUDGET,
           *args]  # fmt: skip
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(profile)}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def figures(dom: str) -> dict[str, dict[str, str]]:
    """``id -> {attribute: value}`` of each chart figure."""
    out = {}
    for tag in re.findall(r'<figure class="chart"[^>]*>', dom):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        out[attrs["id"]] = {k.removeprefix("data-"): v for k, v in attrs.items() if k != "id"}
    return out


def drawn(dom: str) -> dict[str, dict[str, str]]:
    """The figures, with what the script says it drew (the data source left out)."""
    return {
        k: {a: v for a, v in f.items() if a not in ("src", "chart", "class")}
        for k, f in figures(dom).items()
    }


def test_workflow_page_draws_its_charts(parity_server, tmp_path):
    dom = _chromium(["--dump-dom", parity_server.url + "/workflows/wf-chain"], tmp_path / "p")
    assert drawn(dom) == {
        "chart-timeline": {"drawn": "true", "mode": "task", "rows": "3", "bars": "3"},
        "chart-telemetry": {"drawn": "true", "points": "2"},
        "chart-dag": {"drawn": "true", "mode": "task", "nodes": "3", "edges": "2"},
        "chart-lineage": {"drawn": "true", "mode": "task", "nodes": "3", "edges": "2"},
    }
    assert dom.count("<canvas") == 4  # ECharts drew on canvas, one per figure
    assert "Readings at task start and end (2 snapshots)." in dom
    # the server-rendered tables are still there
    assert '<a href="/tasks/a2">a2</a>' in dom and "<h2>Activities</h2>" in dom

    dom = _chromium(["--dump-dom", parity_server.url + "/workflows/wf-diamond"], tmp_path / "p")
    assert drawn(dom) == {
        "chart-timeline": {"drawn": "true", "mode": "task", "rows": "5", "bars": "5"},
        "chart-telemetry": {"drawn": "empty", "points": "0"},
        # parent d1 -> d1c, explicit d1 -> d4, four data-flow edges
        "chart-dag": {"drawn": "true", "mode": "task", "nodes": "5", "edges": "6"},
        "chart-lineage": {"drawn": "true", "mode": "task", "nodes": "5", "edges": "4"},
    }
    assert "No telemetry was captured for these tasks." in dom


def test_task_page_draws_its_lineage_graph(parity_server, tmp_path):
    dom = _chromium(["--dump-dom", parity_server.url + "/tasks/a3?depth=2"], tmp_path / "p")
    assert drawn(dom) == {
        "chart-task": {"drawn": "true", "mode": "task", "nodes": "3", "edges": "2"}
    }
    assert dom.count("<canvas") == 1
    dom = _chromium(["--dump-dom", parity_server.url + "/tasks/a3"], tmp_path / "p")
    assert drawn(dom)["chart-task"]["nodes"] == "2"  # a2 and a3: depth 1


def test_chart_data(parity_server):
    s = parity_server
    tl = s.get("/ui-data/workflows/wf-diamond/timeline").json()
    assert tl == {
        "mode": "task", "rows": ["split #1", "split_part #2", "proc #3", "proc #4", "merge #5"],
        "bars": [[0, 0.0, 1.0, "FINISHED", "d1"], [1, 0.25, 0.75, "FINISHED", "d1c"],
                 [2, 2.0, 3.0, "FINISHED", "d2"], [3, 2.0, 4.0, "ERROR", "d3"],
                 [4, 5.0, 6.0, "FINISHED", "d4"]],
        "notes": [], "unit": "s", "span": 6.0, "statuses": ["ERROR", "FINISHED"], "tasks": 5,
    }  # fmt: skip
    tel = s.get("/ui-data/workflows/wf-chain/telemetry").json()
    assert (tel["x"], tel["cpu"], tel["proc_cpu"], tel["points"]) == (
        [0.0, 2.0], [50.0, 54.0], [99.5, 99.5], 2
    )  # fmt: skip
    dag = s.get("/ui-data/workflows/wf-diamond/dag").json()
    assert [(n["id"], n["label"], n["x"], n["color"]) for n in dag["nodes"]] == [
        ("d1", "split", 0, "#4C78A8"), ("d1c", "split_part", 1, "#4C78A8"),
        ("d2", "proc", 1, "#4C78A8"), ("d3", "proc", 1, "#E45756"), ("d4", "merge", 2, "#4C78A8"),
    ]  # fmt: skip
    assert [(e["src"], e["dst"], e["kind"]) for e in dag["edges"]] == [
        ("d1", "d1c", "parent"), ("d1", "d2", "dataflow"), ("d1", "d3", "dataflow"),
        ("d1", "d4", "explicit"), ("d2", "d4", "dataflow"), ("d3", "d4", "dataflow"),
    ]  # fmt: skip
    assert {n["url"] for n in dag["nodes"]} == {f"/tasks/{t}" for t in "d1 d1c d2 d3 d4".split()}
    graph = s.get("/ui-data/tasks/a2/graph", params={"depth": 1}).json()
    assert [(n["id"], n["focus"]) for n in graph["nodes"]] == [
        ("a1", False), ("a2", True), ("a3", False)
    ]  # fmt: skip
    missing = ["/ui-data/workflows/nope/dag", "/ui-data/workflows/wf-chain/nope",
               "/ui-data/tasks/nope/graph", "/static/nope.js", "/static/%2e%2e/ui.py"]  # fmt: skip
    for path in missing:
        assert s.get(path).status_code == 404, path
    assert s.get("/ui-data/workflows/wf-chain/lineage", params={"depth": -1}).status_code == 400


def test_screenshot_shows_the_charts(parity_server, tmp_path):
    png = tmp_path / "wf.png"
    page = parity_server.url + "/workflows/wf-chain"
    _chromium(["--window-size=1280,1900", f"--screenshot={png}", page], tmp_path / "p")
    colors, top_share = colors_of(png)
    assert colors >= 200, colors  # anti-aliased bars, lines, nodes and text
    assert top_share < 0.9, top_share
    from PIL import Image

    with Image.open(png) as img:
        rgb = img.convert("RGB")
        counts = dict((c, n) for n, c in rgb.getcolors(maxcolors=1 << 24))
    # the Gantt bars and graph nodes in the FINISHED colour: drawn, not just the page around them
    assert counts.get((0x4C, 0x78, 0xA8), 0) > 2000


def test_every_script_and_style_comes_from_the_server(parity_server, tmp_path):
    s = parity_server
    for path in ("/workflows/wf-chain", "/tasks/a2"):
        dom = _chromium(["--dump-dom", s.url + path], tmp_path / "p")  # after the scripts ran
        refs = re.findall(r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="([^"]*)"', dom)
        assert refs and all(r.startswith("/") and not r.startswith("//") for r in refs), refs
        assert set(re.findall(r'<script[^>]*src="([^"]*)"', dom)) == {
            "/static/vendor/echarts/echarts.min.js", "/static/charts.js"
        }  # fmt: skip
    js = s.get("/static/vendor/echarts/echarts.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert js.text.lstrip().startswith("/*\n* Licensed to the Apache Software Foundation")
    assert "Apache License" in s.get("/static/vendor/echarts/LICENSE").text
    ours = s.get("/static/charts.js").text
    assert re.findall(r"https?://", ours) == []  # the UI's script names no other host


# --- a workflow beyond the PDF report's limits: drawn per activity ----------------------------

BIG = 1200  # timed tasks: > GANTT_TASK_ROWS and > GRAPH_TASK_NODES; 2400 snapshots > 2000


def big_batches() -> list[list[dict]]:
    """wf-big: 400 prep, 400 sim (2 failed), 400 post tasks back to back, each with telemetry,
    prep k -> sim k -> post k by data; wf-next's report reads post 0's output, wf-last's archive
    reads the report's (two workflows away)."""
    tasks = []
    for j in range(BIG):
        act, k = ("prep", "sim", "post")[j // 400], j % 400
        used = {} if act == "prep" else {"inp": f"/d/{'p' if act == 'sim' else 's'}{k}.bin"}
        tasks.append(_task(
            f"b{j:04d}", "wf-big", "camp-big", act, float(j), j + 0.5,
            status="ERROR" if j in (500, 501) else "FINISHED", used=used,
            generated={"out": f"/d/{act[0] if act != 'post' else 'q'}{k}.bin"},
            telemetry_at_start=telemetry(j % 7), telemetry_at_end=telemetry(j % 5),
        ))  # fmt: skip
    tasks += [
        _task("nx1", "wf-next", "camp-big", "report", 1300.0, 1301.0,
              used={"inp": "/d/q0.bin"}, generated={"out": "/d/r.bin"}),
        _task("ls1", "wf-last", "camp-big", "archive", 1400.0, 1401.0, used={"inp": "/d/r.bin"}),
    ]  # fmt: skip
    wfs = [{"type": "workflow", "workflow_id": w, "name": w[3:], "campaign_id": "camp-big",
            "status": "FINISHED", "started_at": 1_700_000_000.0}
           for w in ("wf-big", "wf-next", "wf-last")]  # fmt: skip
    return [wfs + tasks]


@pytest.fixture(scope="module", params=("duckdb", "postgres"))
def big_server(request, tmp_path_factory, pg_server):
    engine = request.param
    folder = tmp_path_factory.mktemp(f"big-{engine}")
    paths = write_batches(folder / "batches", big_batches())
    if engine == "duckdb":
        from provwh.warehouse.duck import DuckTarget

        location = str(folder / "w.duckdb")
        load(DuckTarget(location), paths)
        options = ["--duckdb", location]
    else:
        from provwh.warehouse.pg import PgTarget

        dbs = PgDatabases(pg_server, "provwh_s_")
        request.addfinalizer(dbs.drop_all)
        location = dbs.create()
        load(PgTarget(location), paths)
        options = ["--postgres", location]
    server = Server(options, folder / "server")
    yield server
    server.stop_checked()


def test_a_big_workflow_is_drawn_per_activity(big_server, tmp_path):
    assert BIG > GANTT_TASK_ROWS and BIG > GRAPH_TASK_NODES
    s = big_server
    tl = s.get("/ui-data/workflows/wf-big/timeline").json()
    assert (tl["mode"], tl["rows"], tl["unit"], tl["tasks"]) == (
        "activity", ["prep (400)", "sim (400)", "post (400)"], "min", BIG
    )  # fmt: skip
    # back-to-back bars merge: prep 1, sim 2 around its failures + 1 ERROR, post 1
    assert [(b[0], b[3]) for b in tl["bars"]] == [
        (0, "FINISHED"), (1, "ERROR"), (1, "FINISHED"), (1, "FINISHED"), (2, "FINISHED")
    ]  # fmt: skip
    tel = s.get("/ui-data/workflows/wf-big/telemetry").json()
    assert (tel["snapshots"], tel["points"], len(tel["x"])) == (2 * BIG, 400, 400)
    assert tel["notes"][1] == "Median of each of 400 equal time intervals."
    dag = s.get("/ui-data/workflows/wf-big/dag").json()
    assert (dag["mode"], dag["tasks"]) == ("activity", BIG)
    assert [(n["id"], n["label"], n["x"], n["color"]) for n in dag["nodes"]] == [
        ("post", "post ×400", 2, "#4C78A8"), ("prep", "prep ×400", 0, "#4C78A8"),
        ("sim", "sim ×400", 1, "#E45756"),
    ]  # fmt: skip
    assert dag["edges"] == [
        {"src": "prep", "dst": "sim", "kind": "dataflow", "count": 400},
        {"src": "sim", "dst": "post", "kind": "dataflow", "count": 400},
    ]
    counts = {}
    for depth in (0, 1, 2):
        g = s.get("/ui-data/workflows/wf-big/lineage", params={"depth": depth}).json()
        counts[depth] = (g["tasks"], len(g["nodes"]), len(g["edges"]))
        if depth == 2:
            assert [n["id"] for n in g["nodes"] if n["outside"]] == [
                "archive (other workflows)", "report (other workflows)"
            ]  # fmt: skip
    assert counts == {0: (BIG, 3, 2), 1: (BIG + 1, 4, 3), 2: (BIG + 2, 5, 4)}

    dom = _chromium(["--dump-dom", s.url + "/workflows/wf-big?depth=2"], tmp_path / "p")
    assert drawn(dom) == {
        "chart-timeline": {"drawn": "true", "mode": "activity", "rows": "3", "bars": "5"},
        "chart-telemetry": {"drawn": "true", "points": "400"},
        "chart-dag": {"drawn": "true", "mode": "activity", "nodes": "3", "edges": "2"},
        "chart-lineage": {"drawn": "true", "mode": "activity", "nodes": "5", "edges": "4"},
    }
    assert f"{BIG} tasks: one row per activity" in dom
    assert '<option value="2" selected="">2</option>' in dom
