"""Reading one workflow's records and edges: shared by the PROV and OpenLineage exports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import orjson

from provwh.core.model import TASK, WORKFLOW
from provwh.exports.source import STREAM_ROWS, ExportError, Source
from provwh.warehouse.escape import NUL_MARKER, is_digest_key, stored_id, unescape


def iso(value: dt.datetime | None) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with ``Z``."""
    return None if value is None else value.isoformat() + "Z"


def workflow_row(src: Source, workflow_id: str) -> dict[str, Any] | None:
    rows = src.dicts(
        'SELECT workflow_id, name, campaign_id, "user", hostname, started_at, ended_at'
        " FROM workflows WHERE workflow_id = %s",
        [stored_id(workflow_id)],
    )
    return rows[0] if rows else None


def epoch_iso(value: float | None) -> str | None:
    """A record's time (epoch seconds) as ISO 8601 UTC with ``Z``."""
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None).isoformat() + "Z"


def workflow_record(src: Source, workflow_id: str) -> dict[str, Any] | None:
    """The workflow's record, as it was captured (every field; NUL escapes undone)."""
    from provwh.warehouse.normalize import record_from_row  # the schema: sqlalchemy

    rows = src.dicts("SELECT * FROM workflows WHERE workflow_id = %s", [stored_id(workflow_id)])
    return unescape(record_from_row(WORKFLOW, rows[0])) if rows else None


def task_records(src: Source, workflow_id: str) -> Iterator[dict[str, Any]]:
    """The workflow's task records in start order, read ``STREAM_ROWS`` at a time (sorting
    whole rows made DuckDB hold them all); ExportError when it has none and is unknown."""
    from provwh.warehouse.normalize import record_from_row  # the schema: sqlalchemy

    order = [r[0] for r in src.rows(
        "SELECT task_id FROM tasks WHERE workflow_id = %s ORDER BY started_at NULLS LAST, task_id",
        [stored_id(workflow_id)],
    )]  # fmt: skip
    if not order and workflow_row(src, workflow_id) is None:
        raise ExportError(f"{src.name}: no workflow {workflow_id!r}")
    for i in range(0, len(order), STREAM_ROWS):
        for row in src.by_keys("tasks", "task_id", order[i : i + STREAM_ROWS]):
            yield unescape(record_from_row(TASK, row))  # as captured: NUL escapes undone


def escaped_ids(src: Source, row: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The task ``row``'s id columns ``names`` as stored (escaped), but for a long id's digest
    key: the id, as escaped, from the row's ``extra`` (warehouse.escape)."""
    out = {name: row[name] for name in names}
    if any(is_digest_key(v) for v in out.values()):
        (text,) = src.rows(
            f"SELECT {src.json_text('extra')} FROM tasks WHERE task_id = %s", [row["task_id"]]
        )[0]
        extra = orjson.loads(text) if text else {}
        for name, value in out.items():
            if is_digest_key(value):
                kept = extra.get(name)
                kept = kept.get(NUL_MARKER) if isinstance(kept, dict) else kept
                if isinstance(kept, str):
                    out[name] = kept
    return out


def task_edges(src: Source, workflow_id: str) -> list[tuple[str, str, str]]:
    """Edges (src, dst, kind) with at least one end in the workflow."""
    return [
        tuple(r)
        for r in src.rows(
            "SELECT src_task_id, dst_task_id, kind FROM task_edges WHERE src_task_id IN"
            " (SELECT task_id FROM tasks WHERE workflow_id = %s) OR dst_task_id IN"
            " (SELECT task_id FROM tasks WHERE workflow_id = %s)"
            " ORDER BY src_task_id, dst_task_id, kind",
            [stored_id(workflow_id)] * 2,
        )
    ]
