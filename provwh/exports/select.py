"""Which tasks and workflows an export covers: one workflow, one campaign, or a date range."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from provwh.exports.source import ExportError, Source
from provwh.warehouse.escape import stored_id


@dataclass
class Selection:
    """The task ids (with their workflow ids) and the workflow ids of an export."""

    label: str
    tasks: dict[str, str | None] = field(default_factory=dict)  # task_id -> workflow_id
    workflows: list[str] = field(default_factory=list)

    @property
    def task_ids(self) -> list[str]:
        return list(self.tasks)


def parse_date(text: str) -> dt.datetime:
    """``YYYY-MM-DD`` or an ISO timestamp, as naive UTC (how the tables store times)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(f"--before {text!r}: expected a date (YYYY-MM-DD) or ISO time") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def in_list(src: Source, column: str) -> str:
    """``column`` is one of a list parameter (a Python list), on either engine."""
    if src.kind == "duckdb":
        return f"{column} IN (SELECT unnest(%s::VARCHAR[]))"
    return f"{column} = ANY(%s)"


def select(
    src: Source,
    workflow_id: str | None = None,
    campaign_id: str | None = None,
    before: str | None = None,
) -> Selection:
    """Resolve exactly one of workflow / campaign / before into task and workflow ids."""
    named = [x for x in (workflow_id, campaign_id, before) if x is not None]
    if len(named) != 1:
        raise ExportError("name exactly one of --workflow, --campaign, --before")
    params: list[Any]
    if workflow_id is not None:
        label = f"workflow {workflow_id}"
        params = [stored_id(workflow_id)]  # ids as stored (warehouse.escape)
        wf_where, task_where = "workflow_id = %s", "workflow_id = %s"
        task_params = params
    elif campaign_id is not None:
        label = f"campaign {campaign_id}"
        wf_where, params = "campaign_id = %s", [stored_id(campaign_id)]
        task_where = (
            "(campaign_id = %s OR workflow_id IN (SELECT workflow_id FROM workflows"
            " WHERE campaign_id = %s))"
        )
        task_params = params * 2
    else:
        when = parse_date(before)  # type: ignore[arg-type]
        label = f"before {when.isoformat()}"
        wf_where, params = "COALESCE(started_at, utc_timestamp) < %s", [when]
        task_where = "COALESCE(started_at, submitted_at, registered_at, utc_timestamp) < %s"
        task_params = [when]
    sel = Selection(label)
    for task_id, wf in src.rows(
        f"SELECT task_id, workflow_id FROM tasks WHERE {task_where} ORDER BY task_id", task_params
    ):
        sel.tasks[task_id] = wf
    sel.workflows = [
        r[0]
        for r in src.rows(
            f"SELECT workflow_id FROM workflows WHERE {wf_where} ORDER BY workflow_id", params
        )
    ]
    if not sel.tasks and not sel.workflows:
        raise ExportError(f"{src.name}: nothing found for {label}")
    return sel
