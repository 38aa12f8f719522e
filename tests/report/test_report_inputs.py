"""Input modes and argument checks of generate_report."""

from __future__ import annotations

import os
import sys

import pytest

from provwh.report import generate_report

RECORDS = [
    {"type": "workflow", "workflow_id": "wf-1", "name": "tiny", "status": "FINISHED"},
    {"type": "task", "task_id": "t-1", "workflow_id": "wf-1", "activity_id": "step"},
]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_jsonl_path": "buffer.jsonl", "records": RECORDS},
        {"records": RECORDS, "workflow_id": "wf-1"},
        {"input_jsonl_path": "buffer.jsonl", "campaign_id": "c-1"},
        {"input_jsonl_path": "buffer.jsonl", "records": RECORDS, "workflow_id": "wf-1"},
    ],
)
def test_more_than_one_input_is_refused(kwargs, tmp_path):
    with pytest.raises(ValueError, match="choose one report input"):
        generate_report(**kwargs)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("report_type", "format", "message"),
    [
        ("provenance_card", "pdf", "supports only format='markdown'"),
        ("workflow_card", "pdf", "supports only format='markdown'"),
        ("provenance_report", "markdown", "supports only format='pdf'"),
        ("summary", "markdown", "unsupported report_type 'summary'"),
    ],
)
def test_unsupported_type_and_format(report_type, format, message):
    with pytest.raises(ValueError, match=message):
        generate_report(report_type, format, records=RECORDS)


def test_workflow_card_is_an_alias(tmp_path):
    result = generate_report("workflow_card", records=RECORDS)
    assert result["report_type"] == "provenance_card"
    assert result["output_path"] == str(tmp_path / "provenance_card.md")


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        generate_report(input_jsonl_path="nope.jsonl")


def test_missing_default_buffer_file():
    with pytest.raises(FileNotFoundError, match="flowcept_buffer.jsonl"):
        generate_report()


def test_default_input_is_the_buffer_file(small_records, tmp_path):
    result = generate_report()
    assert result == {
        "report_type": "provenance_card",
        "format": "markdown",
        "output_path": str(tmp_path / "provenance_card.md"),
        "input_mode": "jsonl",
        "input": "flowcept_buffer.jsonl",
        "records": len(small_records),
        "workflows": 1,
        "tasks": len(small_records) - 1,
        "objects": 0,
        "workflow_ids": [small_records[0]["workflow_id"]],
        "printed": False,
    }


def test_explicit_jsonl_and_records_give_the_same_card(small_records, tmp_path):
    os.rename("flowcept_buffer.jsonl", "run.jsonl")
    from_file = generate_report(input_jsonl_path="run.jsonl", output_path="a.md")
    from_records = generate_report(records=small_records, output_path="b.md")
    assert from_file["input_mode"] == "jsonl" and from_file["input"] == "run.jsonl"
    assert from_records["input_mode"] == "records"
    assert from_records["input"] == len(small_records)
    assert (tmp_path / "a.md").read_text() == (tmp_path / "b.md").read_text()


def test_records_mode_touches_only_the_output(small_records, tmp_path):
    os.remove("flowcept_buffer.jsonl")
    before = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
    generate_report(records=small_records, output_path="reports/card.md")
    generate_report("provenance_report", "pdf", records=small_records, output_path="reports/r.pdf")
    after = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
    assert {str(p) for p in after - before} == {"reports", "reports/card.md", "reports/r.pdf"}


def test_records_must_be_dicts():
    with pytest.raises(ValueError, match="records must be dicts"):
        generate_report(records=[RECORDS[0], "not a record"])
    with pytest.raises(ValueError, match="list of dicts"):
        generate_report(records=RECORDS[0])


def test_db_mode_needs_the_query_layer(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "provwh.query.api", None)  # as if it did not exist
    for kwargs in ({"workflow_id": "wf-1"}, {"campaign_id": "c-1"}):
        with pytest.raises(RuntimeError, match=r"needs the query layer \(provwh.query\)"):
            generate_report(**kwargs)
    assert os.listdir(tmp_path) == []
