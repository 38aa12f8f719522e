"""Reading one workflow's tasks, values and edges: shared by the PROV and OpenLineage exports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from provwh.exports.source import ExportError, Source

TASK_COLUMNS = (
    "task_id", "workflow_id", "campaign_id", "activity_id", "status", "submitted_at",
    "started_at", "ended_at", "hostname", "user", "parent_task_id",
)  # fmt: skip


def iso(value: dt.datetime | None) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with ``Z``."""
    return None if value is None else value.isoformat() + "Z"


def workflow_row(src: Source, workflow_id: str) -> dict[str, Any] | None:
    rows = src.dicts(
        'SELECT workflow_id, name, campaign_id, "user", hostname, started_at, ended_at'
        " FROM workflows WHERE workflow_id = %s",
        [workflow_id],
    )
    return rows[0] if rows else None


def workflow_tasks(src: Source, workflow_id: str) -> list[dict[str, Any]]:
    """The workflow's tasks in start order; ExportError when it has none and is unknown."""
    cols = ", ".join(f'"{c}"' for c in TASK_COLUMNS)
    tasks = src.dicts(
        f"SELECT {cols}, {src.json_text('used')} AS used_json,"
        f" {src.json_text('generated')} AS generated_json FROM tasks WHERE workflow_id = %s"
        " ORDER BY started_at NULLS LAST, task_id",
        [workflow_id],
    )
    if not tasks and workflow_row(src, workflow_id) is None:
        raise ExportError(f"{src.name}: no workflow {workflow_id!r}")
    return tasks


def task_values(src: Source, workflow_id: str) -> list[dict[str, Any]]:
    return src.dicts(
        "SELECT v.task_id, v.direction, v.key_path, v.value_type, v.value_text, v.value_num,"
        f" v.value_bool, {src.json_text('v.value_json')} AS value_json, v.value_hash"
        " FROM task_values v JOIN tasks t ON t.task_id = v.task_id WHERE t.workflow_id = %s"
        " ORDER BY v.task_id, v.direction, v.ordinal",
        [workflow_id],
    )


def task_edges(src: Source, workflow_id: str) -> list[tuple[str, str, str]]:
    """Edges (src, dst, kind) with at least one end in the workflow."""
    return [
        tuple(r)
        for r in src.rows(
            "SELECT src_task_id, dst_task_id, kind FROM task_edges WHERE src_task_id IN"
            " (SELECT task_id FROM tasks WHERE workflow_id = %s) OR dst_task_id IN"
            " (SELECT task_id FROM tasks WHERE workflow_id = %s)"
            " ORDER BY src_task_id, dst_task_id, kind",
            [workflow_id, workflow_id],
        )
    ]
