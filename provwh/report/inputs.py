"""Where a report's records come from: a JSONL buffer file, in-memory records or the database.

Exactly one source is allowed so that a report always says unambiguously what it describes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from provwh.core.config import get_settings
from provwh.transport.buffer_file import read

JSONL, RECORDS, DB = "jsonl", "records", "db"


@dataclass
class ReportInput:
    mode: str  # "jsonl" | "records" | "db"
    input: Any  # the file path, the record count, or the id
    records: list[dict[str, Any]]


def select_mode(
    input_jsonl_path: str | os.PathLike | None,
    records: Any,
    workflow_id: str | None,
    campaign_id: str | None,
) -> str:
    """The one input mode the arguments name (JSONL, the default, when none is named)."""
    given = []
    if input_jsonl_path is not None:
        given.append("input_jsonl_path")
    if records is not None:
        given.append("records")
    if workflow_id is not None or campaign_id is not None:
        given.append("workflow_id/campaign_id")
    if len(given) > 1:
        raise ValueError(
            "choose one report input: input_jsonl_path, records, or workflow_id/campaign_id "
            f"(got {' and '.join(given)})"
        )
    if records is not None:
        return RECORDS
    if given:
        return DB if given[0] == "workflow_id/campaign_id" else JSONL
    return JSONL


def _records_from_db(
    workflow_id: str | None, campaign_id: str | None, db: Any = None
) -> list[dict[str, Any]]:
    """Workflow and task records of a workflow or campaign, read through the query layer
    (from ``db``, a ``DBAPI``; None: the settings' database)."""
    try:
        from provwh.query.api import records_for
    except ImportError as exc:
        raise RuntimeError(
            "reading reports from the database needs the query layer (provwh.query)"
        ) from exc
    from provwh.report.resources import TELEMETRY_COLUMNS_READ

    return records_for(
        workflow_id=workflow_id,
        campaign_id=campaign_id,
        telemetry_columns=TELEMETRY_COLUMNS_READ,
        objects=True,
        db=db,
    )


def _as_record_list(records: Any) -> list[dict[str, Any]]:
    if isinstance(records, dict | str | bytes):
        raise ValueError("records must be a list of dicts (workflow and task records)")
    try:
        out = list(records)
    except TypeError as exc:
        raise ValueError("records must be a list of dicts (workflow and task records)") from exc
    bad = next((r for r in out if not isinstance(r, dict)), None)
    if bad is not None:
        raise ValueError(f"records must be dicts; got a {type(bad).__name__}")
    return out


def resolve(
    input_jsonl_path: str | os.PathLike | None = None,
    records: Any = None,
    workflow_id: str | None = None,
    campaign_id: str | None = None,
    db: Any = None,
) -> ReportInput:
    """Read the records of the one selected input (``db``: the database a workflow or a
    campaign is read from; None: the settings')."""
    mode = select_mode(input_jsonl_path, records, workflow_id, campaign_id)
    if mode == RECORDS:
        recs = _as_record_list(records)
        return ReportInput(RECORDS, len(recs), recs)
    if mode == DB:
        recs = _records_from_db(workflow_id, campaign_id, db)
        ident = workflow_id if workflow_id is not None else campaign_id
        if not recs:
            which = "workflow_id" if workflow_id is not None else "campaign_id"
            raise ValueError(f"no provenance records found in the database for {which}={ident}")
        return ReportInput(DB, ident, recs)
    path = input_jsonl_path
    if path is None:
        path = get_settings().get("project.dump_buffer.path")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"report input file '{path}' was not found"
            + (
                ""
                if input_jsonl_path is not None
                else " (the default buffer file: run a capture with project.dump_buffer.enabled,"
                " or pass input_jsonl_path, records or workflow_id)"
            )
        )
    return ReportInput(JSONL, path, read(path))
