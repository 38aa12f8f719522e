"""``generate_report``: one call from records (file, list or database) to a card or a PDF."""

from __future__ import annotations

import os
from typing import Any

from provwh.core.gcpause import gc_paused
from provwh.report import inputs

CARD, PDF_REPORT = "provenance_card", "provenance_report"
# report type → (canonical type, the one format it supports)
REPORT_TYPES: dict[str, tuple[str, str]] = {
    "provenance_card": (CARD, "markdown"),
    "workflow_card": (CARD, "markdown"),
    "provenance_report": (PDF_REPORT, "pdf"),
}
DEFAULT_OUTPUT = {CARD: "provenance_card.md", PDF_REPORT: "provenance_report.pdf"}


def check_type_and_format(report_type: str, format: str) -> str:
    """The canonical report type, or ValueError naming what is supported."""
    if report_type not in REPORT_TYPES:
        raise ValueError(
            f"unsupported report_type {report_type!r}; supported: "
            "'provenance_card' (markdown; alias 'workflow_card'), 'provenance_report' (pdf)"
        )
    canonical, supported = REPORT_TYPES[report_type]
    if str(format).lower() != supported:
        raise ValueError(
            f"report_type {report_type!r} supports only format={supported!r}, not {format!r}"
        )
    return canonical


def generate_report(
    report_type: str = "provenance_card",
    format: str = "markdown",
    print_markdown: bool = False,
    output_path: str | os.PathLike | None = None,
    input_jsonl_path: str | os.PathLike | None = None,
    records: list[dict[str, Any]] | None = None,
    workflow_id: str | None = None,
    campaign_id: str | None = None,
) -> dict[str, Any]:
    """Write a provenance card (Markdown) or report (PDF) from exactly one input.

    Input: ``input_jsonl_path`` (the default buffer file when no input is given), ``records``,
    or ``workflow_id`` / ``campaign_id`` (the database). Returns what was written and from
    which input. ``print_markdown`` also renders a card in the terminal (ignored for PDF).
    Raises ValueError (inputs, type/format), FileNotFoundError (input file),
    ModuleNotFoundError (rich or matplotlib missing: ``pip install 'provwh[report]'``).
    """
    kind = check_type_and_format(report_type, format)
    inputs.select_mode(input_jsonl_path, records, workflow_id, campaign_id)
    if kind == CARD and print_markdown:
        from provwh.report.card import require_rich

        require_rich()
    if kind == PDF_REPORT:
        from provwh.report.pdf import require_matplotlib

        require_matplotlib()

    source, data, doc = _document(input_jsonl_path, records, workflow_id, campaign_id)
    path = os.fspath(output_path) if output_path is not None else DEFAULT_OUTPUT[kind]
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)

    result: dict[str, Any] = {
        "report_type": kind,
        "format": "markdown" if kind == CARD else "pdf",
        "output_path": os.path.abspath(path),
        "input_mode": source.mode,
        "input": source.input,
        "records": data.record_count,
        "workflows": len(data.workflows),
        "tasks": len(data.tasks),
        "objects": len(data.objects),  # object records (versions) of the workflows
        "workflow_ids": [wf.workflow_id for wf in data.workflows],
    }
    if kind == CARD:
        from provwh.report import card

        text = card.render(doc)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        if print_markdown:
            card.print_markdown(text)
        result["printed"] = bool(print_markdown)
    else:
        from provwh.report import pdf

        result.update(pdf.write(data, doc, path))
    return result


def _document(
    input_jsonl_path: Any = None,
    records: Any = None,
    workflow_id: str | None = None,
    campaign_id: str | None = None,
    db: Any = None,
) -> tuple[inputs.ReportInput, Any, Any]:
    """The input (its records dropped: the report holds its own, normalized, copies), the
    report's numbers and its document."""
    from provwh.report import document, summary

    with gc_paused():  # hundreds of thousands of small dicts, no cycles (charts come after)
        source = inputs.resolve(input_jsonl_path, records, workflow_id, campaign_id, db)
        data = summary.load(source.records)
        source.records = []
        return source, data, document.build(data)


def card_markdown(
    workflow_id: str | None = None, campaign_id: str | None = None, db: Any = None
) -> str:
    """The provenance card of a workflow or a campaign (exactly one) in the database ``db``
    (a ``DBAPI``; None: the settings'), as Markdown: the text ``generate_report`` writes.
    ValueError when the database holds no records of it."""
    if (workflow_id is None) == (campaign_id is None):
        raise ValueError("card_markdown needs a workflow_id or a campaign_id (one of them)")
    from provwh.report import card

    return card.render(_document(workflow_id=workflow_id, campaign_id=campaign_id, db=db)[2])
