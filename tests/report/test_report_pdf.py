"""The PDF report: written, paged, charts chosen by what the records hold, large runs condensed."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from report_helpers import pipeline, run_small_workflow, square

from provwh import Flowcept
from provwh.report import generate_report


def pdf_pages(path) -> int:
    """Page objects in the file (matplotlib writes page dictionaries uncompressed)."""
    data = open(path, "rb").read()
    assert data.startswith(b"%PDF-")
    return len(re.findall(rb"/Type\s*/Page[^s]", data))


def test_pdf_of_a_small_capture(small_records, tmp_path):
    result = generate_report("provenance_report", "pdf", records=small_records)
    assert result["output_path"] == str(tmp_path / "provenance_report.pdf")
    assert (result["report_type"], result["format"], result["input_mode"]) == (
        "provenance_report",
        "pdf",
        "records",
    )
    assert (result["workflows"], result["tasks"]) == (1, 10)
    assert result["charts"] == ["gantt", "elapsed", "graph"]  # no telemetry: no CPU/memory page
    assert result["pages"] == pdf_pages(result["output_path"]) >= 5


def test_pdf_with_telemetry(set_telemetry):
    set_telemetry(True)
    with Flowcept(workflow_name="measured"):
        pipeline(3)
    result = generate_report("provenance_report", "pdf", output_path="out/r.pdf")
    assert result["input_mode"] == "jsonl"
    assert result["charts"] == ["gantt", "elapsed", "telemetry", "graph"]
    assert result["pages"] == pdf_pages("out/r.pdf")


def test_pdf_of_one_task():
    with Flowcept(workflow_name="one"):
        square(2)
    result = generate_report("provenance_report", "pdf")
    assert result["tasks"] == 1
    assert result["charts"] == ["gantt", "elapsed"]  # no links between tasks: no graph page
    # the two charts and three pages of text: sections 1-4 before the charts, 5-6 after
    assert result["pages"] == pdf_pages(result["output_path"]) == 5


def test_pdf_of_a_campaign():
    records = run_small_workflow("first", campaign_id="camp-2")
    records += run_small_workflow("second", campaign_id="camp-2")
    result = generate_report("provenance_report", "pdf", records=records)
    assert result["workflows"] == 2
    assert result["charts"][0] == "workflows"
    wf_ids = result["workflow_ids"]
    assert [c for c in result["charts"] if c.startswith("gantt:")] == [f"gantt:{i}" for i in wf_ids]
    assert result["pages"] == pdf_pages(result["output_path"])


def test_pdf_of_5000_tasks_stays_readable(set_telemetry, tmp_path):
    set_telemetry(True)
    with Flowcept(workflow_name="large"):
        pipeline(4999)
    result = generate_report("provenance_report", "pdf")
    assert result["tasks"] == 5000
    notes = "\n".join(result["notes"])
    assert "5000 tasks: one row per activity" in notes
    assert "one node per activity" in notes
    assert "Median of each of" in notes  # the telemetry series was binned
    assert result["pages"] == pdf_pages(result["output_path"]) <= 10
    assert (tmp_path / "provenance_report.pdf").stat().st_size < 2_000_000


def test_pdf_without_matplotlib(small_records, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'provwh\[report\]'"):
        generate_report("provenance_report", "pdf", records=small_records)
    assert not (tmp_path / "provenance_report.pdf").exists()


def test_importing_provwh_loads_no_report_packages():
    code = (
        "import sys, provwh, provwh.report; "
        "print(sorted(m for m in ('matplotlib', 'rich', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gantt_bars_that_touch_are_drawn_as_one():
    from provwh.report.pdf_charts import _merged

    spans = [(5.0, 1.0), (0.0, 1.0), (1.0005, 2.0), (10.0, 0.5), (3.0, 0.5)]
    assert _merged(spans, 0.001) == [(0.0, 3.5), (5.0, 1.0), (10.0, 0.5)]
    assert _merged(spans, 0.0) == [(0.0, 1.0), (1.0005, 3.5 - 1.0005), (5.0, 1.0), (10.0, 0.5)]
    assert _merged([], 1.0) == []
