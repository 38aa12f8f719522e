"""The provenance report as a PDF: the card's content as text pages, plus charts.

Charts per workflow: a Gantt chart of tasks, elapsed time per activity, CPU and memory over
time (when telemetry was captured) and the task dependency graph (layered by depth, drawn with
matplotlib alone). Large runs stay readable: the Gantt chart switches from one row per task to
one row per activity, long lists keep their largest entries, telemetry series are sampled and
big graphs are drawn per activity; each such choice is written on the page and returned in
``notes``. Figures are built with ``matplotlib.figure.Figure`` (no pyplot), so the caller's
backend and open figures are left alone and no display is needed.
"""

from __future__ import annotations

from typing import Any

from provwh.report import summary as sm
from provwh.report.card import REPORT_EXTRA
from provwh.report.document import CAMPAIGN_TITLE, CARD_TITLE, Document, Section
from provwh.report.pdf_charts import (
    campaign_gantt_page,
    elapsed_page,
    gantt_page,
    graph_page,
    telemetry_page,
)
from provwh.report.pdf_pages import PdfWriter, TextFlow

MAX_CHARTED_WORKFLOWS = 10
FRONT = ("workflow", "summary", "infrastructure", "overview")


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"the PDF report needs the 'matplotlib' package: {REPORT_EXTRA}", name="matplotlib"
        ) from exc


def _workflow_pages(
    flow: TextFlow, wf: sm.WorkflowRun, sections: list[Section], level: int, charts: bool
) -> tuple[list[str], list[str]]:
    """Front text (workflow, summary, infrastructure, overview), the charts, then the other
    sections (activities, artifacts)."""
    writer = flow.writer
    front = [s for s in sections if s.key in FRONT]
    back = [s for s in sections if s.key not in FRONT]
    for section in front:
        flow.section(section, level)
    flow.close()
    drawn, notes = [], []
    if charts:
        prefix = f"{wf.label}: " if level > 2 else ""
        for name, page, title in (
            ("gantt", gantt_page, "Tasks over time"),
            ("elapsed", elapsed_page, "Elapsed time per activity"),
            ("telemetry", telemetry_page, "CPU and memory over time"),
            ("graph", graph_page, "Task dependency graph"),
        ):
            before = writer.pages
            page_notes = page(writer, wf, prefix + title)
            if writer.pages > before:
                drawn.append(name)
                notes += [f"{prefix}{title}: {n}" for n in page_notes]
    flow = TextFlow(writer)
    for section in back:
        flow.section(section, level)
    flow.close()
    return drawn, notes


def report_title(card_title: str) -> str:
    """The PDF's title for a card's: ``Workflow Card: x`` → ``Provenance Report: x``."""
    for card, report in (
        (CAMPAIGN_TITLE, "Campaign Provenance Report"),
        (CARD_TITLE, "Provenance Report"),
    ):
        if card_title.startswith(card):
            return report + card_title[len(card) :]
    return card_title


def write(data: sm.Dataset, doc: Document, path: str) -> dict[str, Any]:
    """Write the PDF; returns its page count, the charts drawn and what was aggregated."""
    require_matplotlib()
    writer = PdfWriter(path, report_title(doc.title))
    charts: list[str] = []
    notes: list[str] = []
    try:
        flow = TextFlow(writer)
        flow.heading(writer.title, 1)
        flow.blocks(doc.intro)
        runs = [s for s in doc.sections if s.key == "workflow_run"]
        closing = [s for s in doc.sections if s.key == "aggregation"]
        if len(data.workflows) == 1:  # the aggregation method closes its back sections
            drawn, wf_notes = _workflow_pages(flow, data.workflows[0], doc.sections, 2, True)
            charts += drawn
            notes += wf_notes
        elif data.workflows:
            flow.section(doc.sections[0], 2)  # the campaign summary
            flow.close()
            before = writer.pages
            notes += campaign_gantt_page(writer, data)
            if writer.pages > before:
                charts.append("workflows")
            for i, (wf, section) in enumerate(zip(data.workflows, runs, strict=True)):
                with_charts = i < MAX_CHARTED_WORKFLOWS
                flow = TextFlow(writer)
                flow.heading(section.title, 2)
                drawn, wf_notes = _workflow_pages(flow, wf, section.subsections, 3, with_charts)
                charts += [f"{c}:{wf.workflow_id}" for c in drawn]
                notes += wf_notes
            if len(data.workflows) > MAX_CHARTED_WORKFLOWS:
                notes.append(
                    f"Charts are drawn for the first {MAX_CHARTED_WORKFLOWS} of "
                    f"{len(data.workflows)} workflows; all of them have their text pages."
                )
        else:
            flow.close()
        if closing and len(data.workflows) > 1:
            flow = TextFlow(writer)
            for section in closing:
                flow.section(section, 2)
            flow.close()
    finally:
        writer.close()
    return {"pages": writer.pages, "charts": charts, "notes": notes}
