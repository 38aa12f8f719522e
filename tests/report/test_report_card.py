"""The Markdown Workflow Card: content from real captures, campaigns, Flowcept-style input."""

from __future__ import annotations

import sys

import pytest
from report_helpers import pipeline, run_small_workflow

from provwh import Flowcept
from provwh.report import fmt, generate_report
from provwh.report.document import NO_TELEMETRY

FLOWCEPT_STYLE = [  # as Flowcept may write them: no "type", times missing or as strings
    {
        "workflow_id": "wf-A",
        "name": "legacy",
        "campaign_id": "c-9",
        "user": "ana",
        "code_repository": {"sha": "0123456789abcdef0123", "branch": "main", "dirty": True},
    },
    {
        "task_id": "t1",
        "workflow_id": "wf-A",
        "activity_id": "load",
        "started_at": 1700000000.0,
        "ended_at": 1700000001.5,
        "status": "FINISHED",
        "used": {"path": "/data/in.csv"},
        "generated": {"rows": 10},
    },
    {"task_id": "t2", "workflow_id": "wf-A", "activity_id": "fit", "parent_task_id": "t1"},
    {
        "task_id": "t3",
        "workflow_id": "wf-A",
        "activity_id": "fit",
        "status": "ERROR",
        "stderr": "Traceback (most recent call last):\nValueError: nan",
        "dependencies": ["t2", "gone"],
    },
    {"task_id": "t3", "started_at": "2023-11-14T22:13:21Z", "ended_at": "2023-11-14T22:13:25Z"},
    {"type": "object", "object_id": "o1"},
]


def card_text(**kwargs) -> str:
    result = generate_report(output_path="card.md", **kwargs)
    with open(result["output_path"], encoding="utf-8") as fh:
        return fh.read()


def table_rows(card: str, heading: str) -> dict[str, list[str]]:
    """Rows of the first table under ``heading``: first cell → the other cells."""
    lines = card.splitlines()
    start = lines.index(heading)
    rows: dict[str, list[str]] = {}
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows.setdefault(cells[0], cells[1:])
        elif rows and not line.startswith("|"):
            break
    return rows


def test_card_of_a_small_capture(small_records):
    card = card_text(records=small_records)
    lines = card.splitlines()
    wf = small_records[0]
    tasks = {r["activity_id"]: r for r in small_records if r["type"] == "task"}
    assert lines[0] == "# Workflow Card: small"
    version = wf["flowcept_version"]
    assert f"Built by provwh {version} from 11 records: 1 workflow, 10 tasks." in lines

    summary = table_rows(card, "## 2. Summary")
    assert summary["Workflow id"] == [f"`{wf['workflow_id']}`"]
    assert summary["Name"] == ["small"]
    assert summary["Status"] == ["FINISHED"]
    assert summary["Tasks"] == ["10 (9 FINISHED, 1 ERROR)"]
    assert summary["User"] == [wf["user"]]
    assert summary["Started (UTC)"][0].endswith("Z")
    assert f"- `fail` (task `{tasks['fail']['task_id']}`): cannot handle 1" in lines

    timing = table_rows(card, "### Timing Report")
    assert list(timing)[:3] == ["Activity", "`pipeline`", "`square`"]
    assert {name: cells[:2] for name, cells in timing.items() if name != "Activity"} == {
        "`pipeline`": ["1", "1 FINISHED"],
        "`square`": ["3", "3 FINISHED"],
        "`fail`": ["1", "1 ERROR"],
        "`train_iteration`": ["4", "4 FINISHED"],
        "`save`": ["1", "1 FINISHED"],
    }
    assert "| `square` | used | `x` | int | 3/3 | 0 … 2 |" in lines
    assert "| `square` | generated | `y` | int | 3/3 | 0 … 4 |" in lines
    assert "| `train_iteration` | generated | `loss` | float | 4/4 | 0.25 … 1.0 |" in lines
    assert "| `save` | used | `dir` | str | 1/1 | 'out' |" in lines

    assert NO_TELEMETRY in lines
    assert not any(line.startswith("Telemetry was captured") for line in lines)

    # the loop is its 4 iterations (as in Flowcept 1.0.3), at the top level: no parent
    assert "- Tasks with a parent task: 3 of 10" in lines
    assert "- Tasks with explicit dependencies: 0 (0 edges)" in lines
    assert "- Roots: 7; leaves: 9" in lines
    assert "- Depth of the parent tree: 2 levels" in lines
    assert f"- Most children: `pipeline` (task `{tasks['pipeline']['task_id']}`): 3" in lines
    loops = table_rows(card, "Loops:")
    assert list(loops)[0] == "Loop"
    assert loops["Loop"][-1] == "Median run"
    assert loops["`train`"][:3] == ["1", "4", "4"]
    iterations = [r for r in small_records if r.get("activity_id") == "train_iteration"]
    run = max(t["ended_at"] for t in iterations) - min(t["started_at"] for t in iterations)
    assert loops["`train`"][-1] == fmt.seconds(run)

    assert f"| `save` | `{tasks['save']['task_id']}` | 11 B |" in lines
    assert "| `save` | generated | `path` | 1 | `out/model.pt` |" in lines


def test_card_is_deterministic(small_records):
    first = card_text(records=small_records)
    assert card_text(records=list(reversed(small_records))) == first


def test_card_with_telemetry(set_telemetry):
    set_telemetry(True)
    with Flowcept(workflow_name="measured"):
        pipeline(2)
    card = card_text(records=Flowcept.read_buffer_file())
    lines = card.splitlines()
    assert "Telemetry was captured for 3 of 3 tasks." in lines
    assert NO_TELEMETRY not in lines
    assert any(line.startswith("- System CPU: ") for line in lines)
    assert any(line.startswith("- Process RSS: ") for line in lines)
    usage = table_rows(card, "### Per-activity Resource Usage")
    assert usage["Activity"] == [
        "Tasks",
        "CPU %",
        "Process CPU %",
        "Memory used Δ",
        "RSS Δ",
        "Peak RSS",
    ]
    assert usage["`pipeline`"][0] == "1"
    assert usage["`square`"][0] == "2"
    assert usage["`square`"][5].endswith("iB")  # peak RSS


def test_campaign_card():
    records = run_small_workflow("first", campaign_id="camp-1")
    records += run_small_workflow("second", campaign_id="camp-1")
    result = generate_report(records=records, output_path="card.md")
    assert (result["workflows"], result["tasks"]) == (2, 20)
    card = open("card.md", encoding="utf-8").read()
    lines = card.splitlines()
    first, second = (r for r in records if r["type"] == "workflow")
    assert lines[0] == "# Campaign Workflow Card"
    assert "- Campaign id: `camp-1`" in lines
    assert "- Workflows: 2 (2 FINISHED)" in lines
    assert "- Tasks: 20 (18 FINISHED, 2 ERROR)" in lines
    overview = table_rows(card, "## Campaign Summary")
    assert overview[f"`{first['workflow_id']}`"][:2] == ["first", "FINISHED"]
    assert overview[f"`{first['workflow_id']}`"][-2:] == ["10", "1"]
    assert overview[f"`{second['workflow_id']}`"][:2] == ["second", "FINISHED"]
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == [
        "## Campaign Summary",
        f"## Workflow first (`{first['workflow_id']}`)",
        f"## Workflow second (`{second['workflow_id']}`)",
        "## Aggregation Method",
    ]
    assert lines.count("#### Timing Report") == 2
    assert sum(line.startswith("| `square` | 3 | 3 FINISHED |") for line in lines) == 2


def test_flowcept_style_records():
    result = generate_report(records=FLOWCEPT_STYLE, output_path="card.md")
    assert (result["records"], result["workflows"], result["tasks"]) == (6, 1, 3)
    lines = open("card.md", encoding="utf-8").read().splitlines()
    expected = [
        "# Workflow Card: legacy",
        "Built by provwh 0.1.0 from 6 records: 1 workflow, 3 tasks, 1 object record.",
        "| Status | UNKNOWN |",
        "| Started (UTC) | 2023-11-14T22:13:20.000Z |",
        "| Ended (UTC) | 2023-11-14T22:13:25.000Z |",
        "| Duration | 5.00 s |",
        "| Code version | `0123456789ab` on main (uncommitted changes) |",
        "| Tasks | 3 (1 FINISHED, 1 ERROR, 1 UNKNOWN) |",
        "- `fit` (task `t3`): ValueError: nan",
        "Machine information was not captured.",
        "| `load` | 1 | 1 FINISHED | 1.50 s | 1.50 s | 1.50 s | 1.50 s | 2023-11-14T22:13:20.000Z "
        "| 2023-11-14T22:13:21.500Z |",
        "| `fit` | 2 | 1 ERROR, 1 UNKNOWN | 4.00 s | 4.00 s | 4.00 s | 4.00 s "
        "| 2023-11-14T22:13:21.000Z | 2023-11-14T22:13:25.000Z |",
        "Tasks without a start or end time: 1 of 3.",
        NO_TELEMETRY,
        "- Tasks with explicit dependencies: 1 (1 edge)",
        "- Roots: 1; leaves: 1",
        "- Longest chain (parents and dependencies): 3 tasks",
        "- References to tasks not in the input: 1",
        "| `load` | used | `path` | 1 | `/data/in.csv` |",
    ]
    for line in expected:
        assert line in lines, line


def test_empty_and_odd_inputs():
    assert generate_report(records=[], output_path="empty.md")["tasks"] == 0
    assert "No workflow or task records in the input." in open("empty.md").read()
    odd = [{"activity_id": "orphan"}, {"task_id": 7, "used": "not a dict", "telemetry_at_end": 1}]
    result = generate_report(records=odd, output_path="odd.md")
    assert (result["workflows"], result["tasks"]) == (1, 2)
    assert "| `orphan` | 1 | 1 UNKNOWN | — | — | — | — | — | — |" in open("odd.md").read()


def test_print_markdown(small_records, capsys):
    result = generate_report(records=small_records, print_markdown=True)
    assert result["printed"] is True
    out = capsys.readouterr().out
    assert "Workflow Card: small" in out
    assert "Timing Report" in out
    assert "train_iteration" in out


def test_print_markdown_without_rich(small_records, monkeypatch, tmp_path):
    for name in ("rich", "rich.console", "rich.markdown"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'provwh\[report\]'"):
        generate_report(records=small_records, print_markdown=True, output_path="card.md")
    assert not (tmp_path / "card.md").exists()


def _iteration(tid, group, i, start, **extra):
    return {"type": "task", "task_id": tid, "workflow_id": "wf-L", "activity_id": "fit_iteration",
            "group_id": group, "used": {"i": i, "item": i}, "status": "FINISHED",
            "started_at": start, "ended_at": start + 1.0, **extra}  # fmt: skip


def test_loop_summary_from_iterations_alone():
    """Flowcept 1.0.3's iterations (no subtype, a group_id per loop run) and provwh's with a
    whole_loop task give the same loop summary: runs by group, durations from iterations."""
    wf = {"type": "workflow", "workflow_id": "wf-L", "name": "loops", "status": "FINISHED"}
    flowcept_style = [wf] + [_iteration(f"g1-{i}", "g1", i, 100.0 + i) for i in range(3)]
    flowcept_style += [_iteration(f"g2-{i}", "g2", i, 200.0 + 2 * i) for i in range(2)]
    whole = {"type": "task", "task_id": "g1", "workflow_id": "wf-L", "activity_id": "fit",
             "subtype": "whole_loop", "started_at": 100.0, "ended_at": 103.0}  # fmt: skip
    provwh_style = [wf, whole] + [
        _iteration(f"g1-{i}", "g1", i, 100.0 + i, subtype="iteration", parent_task_id="g1")
        for i in range(3)
    ]
    provwh_style += [_iteration(f"g2-{i}", "g2", i, 200.0 + 2 * i, subtype="iteration")
                     for i in range(2)]  # fmt: skip
    rows = []
    for records in (flowcept_style, provwh_style):
        loops = table_rows(card_text(records=records), "Loops:")
        rows.append(loops["`fit`"])
    # 2 runs, 5 iterations, 2 – 3 per run, median iteration 1 s, runs of 3 s and 3 s
    assert rows[0] == rows[1] == ["2", "5", "2 – 3", fmt.seconds(1.0), fmt.seconds(3.0)]


T0 = 1700000000.0
OBJECT_RUN = [  # as Flowcept 1.0.3 returns them: objects have an object_id and no "type"
    {
        "type": "workflow",
        "workflow_id": "wf-O",
        "name": "trainer",
        "status": "FINISHED",
        "started_at": T0,
        "ended_at": T0 + 60,
        "subtype": "ml_workflow",
        "machine_info": {"node-1": {"platform": {"system": "Linux", "release": "6.1.0",
                                                "machine": "x86_64"}}},
    },  # fmt: skip
    {"type": "task", "task_id": "t-prep", "workflow_id": "wf-O", "activity_id": "prepare",
     "started_at": T0, "ended_at": T0 + 2, "status": "FINISHED", "tags": ["data"]},
    {"type": "task", "task_id": "t-1", "workflow_id": "wf-O", "activity_id": "train",
     "subtype": "learning", "started_at": T0 + 2, "ended_at": T0 + 20, "status": "FINISHED",
     "tags": ["gpu", "epoch"]},
    {"type": "task", "task_id": "t-2", "workflow_id": "wf-O", "activity_id": "train",
     "subtype": "learning", "started_at": T0 + 20, "ended_at": T0 + 50, "status": "FINISHED",
     "tags": ["gpu"]},
] + [
    {"object_id": f"model-{i}", "workflow_id": "wf-O", "task_id": "t-1" if i < 3 else "t-2",
     "object_type": "ml_model", "version": i, "created_at": T0 + 10,
     "updated_at": T0 + 10 + 5 * i, "object_size_bytes": 1024 * (i + 1), "data": b"weights",
     "custom_metadata": {"loss": round(1 / (i + 1), 2)}, "tags": ["best"] if i == 5 else []}
    for i in range(6)
] + [
    {"object_id": "ds-train", "workflow_id": "wf-O", "task_id": "t-prep",
     "object_type": "dataset", "version": v, "created_at": T0 + 1, "updated_at": T0 + 1 + v,
     "object_size_bytes": 2048, "grid_fs_file_id": f"fs-{v}", "custom_metadata": {"rows": rows}}
    for v, rows in ((0, 100), (1, 120))
]  # fmt: skip


def test_workflow_card_with_flowcept_object_records():
    """Six models and two dataset versions: objects (never tasks), in Flowcept 1.0.3's Workflow
    Card layout with its object artifacts summary and the latest objects per type."""
    result = generate_report("workflow_card", records=OBJECT_RUN, output_path="card.md")
    assert (result["records"], result["workflows"], result["tasks"], result["objects"]) == (
        12,
        1,
        3,
        8,
    )
    card = open("card.md", encoding="utf-8").read()
    lines = card.splitlines()
    assert [line for line in lines if line.startswith("#")] == [
        "# Workflow Card: trainer",
        "## 1. Workflow",
        "## 2. Summary",
        "## 3. Infrastructure",
        "## 4. Workflow Overview",
        "### 4.1 Run Summary",
        "### 4.2 Workflow Structure",
        "### 4.3 Resource Usage",
        "### 4.4 Observations",
        "## 5. Activities",
        "### Timing Report",
        "### Inputs and Outputs",
        "### Tags per Activity",
        "## 6. Significant Workflow Artifacts",
        "### Object Artifacts Summary",
        "### Object Details by Type",
        "### Data and Paths in Tasks",
        "## Aggregation Method",
    ]
    assert (
        lines[2] == "Built by provwh 0.1.0 from 12 records: 1 workflow, 3 tasks, 8 object records."
    )
    for line in [
        "- Name: trainer",
        "- Description: Workflow run 'trainer' of 2 activities (3 tasks).",
        "| Subtype | ml_workflow |",
        "| Tasks | 3 (3 FINISHED) |",
        "- Host OS: Linux 6.1.0 (x86_64)",
        "- Activities: 2",
        "- Objects: 7 (1 dataset, 6 ml_model)",
        "- Total elapsed workflow time: 1 min 0 s",
        "- Slowest activity (median): `train` at 24.00 s",
        "- Most time in total: `train`, 48.00 s over 2 tasks",
        "- Objects stored: 1 object of type `dataset`, 6 objects of type `ml_model`",
        "Models (6):",
        "Showing the 5 latest of 6.",
        "Datasets (1):",
        "- Grouping key: `activity_id`; each activity row aggregates its tasks (`Tasks`).",
    ]:
        assert line in lines, line
    assert table_rows(card, "### Tags per Activity") == {
        "Activity": ["Tasks", "Subtype", "Tags (tasks)"],
        "`prepare`": ["1", "—", "`data`"],
        "`train`": ["2", "`learning`", "`gpu` (2), `epoch`"],
    }
    assert table_rows(card, "### Object Artifacts Summary") == {
        "Metric": ["Value"],
        "Objects": ["7"],
        "Object records (versions)": ["8"],
        "By type": ["dataset: 1, ml_model: 6"],
        "By storage": ["gridfs: 1, in_object: 6"],
        "Task-linked objects": ["7"],
        "Workflow-linked objects": ["7"],
        "Max version": ["5"],
        "Total size": ["23.0 KiB"],
        "Average size": ["3.3 KiB"],
        "Max size": ["6.0 KiB"],
    }
    header = ["Version", "Versions", "Size", "Task", "Stored (UTC)", "Tags", "Metadata"]
    assert table_rows(card, "Models (6):") == {
        "Object": header,
        "`model-5`": ["5", "1", "6.0 KiB", "`t-2`", "2023-11-14T22:13:55.000Z", "`best`",
                      "loss=0.17"],
        "`model-4`": ["4", "1", "5.0 KiB", "`t-2`", "2023-11-14T22:13:50.000Z", "—", "loss=0.2"],
        "`model-3`": ["3", "1", "4.0 KiB", "`t-2`", "2023-11-14T22:13:45.000Z", "—",
                      "loss=0.25"],
        "`model-2`": ["2", "1", "3.0 KiB", "`t-1`", "2023-11-14T22:13:40.000Z", "—",
                      "loss=0.33"],
        "`model-1`": ["1", "1", "2.0 KiB", "`t-1`", "2023-11-14T22:13:35.000Z", "—", "loss=0.5"],
    }  # fmt: skip
    assert table_rows(card, "Datasets (1):") == {
        "Object": header,
        "`ds-train`": ["1", "2", "2.0 KiB", "`t-prep`", "2023-11-14T22:13:22.000Z", "—",
                       "rows=120"],
    }  # fmt: skip
    # the same card from any order of the records; provenance_card is the same report
    generate_report("provenance_card", records=list(reversed(OBJECT_RUN)), output_path="r.md")
    assert open("r.md", encoding="utf-8").read() == card


def test_objects_of_no_workflow_in_the_input_are_left_out():
    records = OBJECT_RUN[:2] + [
        {"object_id": "elsewhere", "workflow_id": "wf-other", "object_type": "ml_model"},
        {"object_id": "by-task", "task_id": "t-prep", "object_type": "dataset"},
        {"object_id": "no-links", "object_type": "dataset"},
    ]
    result = generate_report(records=records, output_path="card.md")
    assert (result["tasks"], result["objects"]) == (1, 2)
    lines = open("card.md", encoding="utf-8").read().splitlines()
    assert "Object records of no workflow in the input were left out: 1." in lines
    assert table_rows("\n".join(lines), "Datasets (2):")["Object"][0] == "Version"
    assert sorted(line.split(" | ")[0] for line in lines if line.startswith("| `")
                  and ("by-task" in line or "no-links" in line)) == [
        "| `by-task`", "| `no-links`"]  # fmt: skip
