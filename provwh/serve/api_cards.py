"""The provenance cards' REST routes: a workflow's or a campaign's card as Markdown (the text
``generate_report`` writes, read from the server's database), and the workflow card as an
attachment, as Flowcept 1.0.3's routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from provwh.serve import records
from provwh.serve.api import db_of
from provwh.serve.records import BadRequest, NotFound

router = APIRouter(prefix="/api/v1")

MARKDOWN = "text/markdown; charset=utf-8"
FORMAT = Query("markdown", description="markdown (the one format served)")


def _card(db: Any, workflow_id: str | None = None, campaign_id: str | None = None) -> bytes:
    from provwh.report.service import card_markdown

    with db.hold():
        if workflow_id is not None:
            if not db.workflow_query({"workflow_id": workflow_id}, ["workflow_id"], 1):
                raise NotFound(f"Workflow not found: {workflow_id}")
        elif not records.campaigns(db, campaign_id):
            raise NotFound(f"Campaign not found: {campaign_id}")
        return card_markdown(workflow_id, campaign_id, db=db).encode()


def _check(format: str) -> None:
    if format.lower() != "markdown":
        raise BadRequest(f"Unsupported format: {format}. Use markdown.")


@router.get("/workflows/{workflow_id}/workflow_card", tags=["workflows"])
def workflow_card(workflow_id: str, format: str = FORMAT, db: Any = Depends(db_of)) -> Response:
    """The workflow's provenance card, as Markdown."""
    _check(format)
    return Response(_card(db, workflow_id=workflow_id), media_type=MARKDOWN)


@router.post("/workflows/{workflow_id}/reports/workflow-card/download", tags=["workflows"])
def workflow_card_download(workflow_id: str, db: Any = Depends(db_of)) -> Response:
    """The workflow's provenance card as a Markdown file to save
    (``workflow_card_<id>.md``)."""
    return Response(
        _card(db, workflow_id=workflow_id),
        media_type=MARKDOWN,
        headers=records.attachment(f"workflow_card_{workflow_id}.md"),
    )


@router.get("/campaigns/{campaign_id}/workflow_card", tags=["campaigns"])
def campaign_card(campaign_id: str, format: str = FORMAT, db: Any = Depends(db_of)) -> Response:
    """The campaign's provenance card (its workflows and tasks), as Markdown."""
    _check(format)
    return Response(_card(db, campaign_id=campaign_id), media_type=MARKDOWN)
