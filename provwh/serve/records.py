"""What the REST routes answer: JSON bodies, list envelopes, paging, derived campaigns."""

from __future__ import annotations

import re
from typing import Any

import orjson

from provwh.core.serialize import dumps

# Flowcept's list bounds
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100

TERMINAL_STATUSES = ("FINISHED", "ERROR", "ABORTED")


class BadRequest(ValueError):
    """A request the server refuses (400, the message as its ``detail``)."""


class NotFound(LookupError):
    """An id the database does not hold (404, the message as its ``detail``)."""


def json_bytes(value: Any) -> bytes:
    """JSON as the warehouse writes records: bytes as ``{"$binary": ...}``, NaN and the
    infinities as ``{"$float": ...}``, integers beyond 64 bits exact; never raises."""
    return dumps(value)


def filter_of(filter_json: str | None) -> dict[str, Any]:
    """The ``filter_json`` parameter: a JSON object, else BadRequest."""
    if filter_json is None or filter_json == "":
        return {}
    try:
        parsed = orjson.loads(filter_json)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Invalid filter JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise BadRequest("filter_json must decode to a JSON object.")
    return parsed


def with_fields(flt: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``flt`` and the equality filters of the parameters that were given, all to match."""
    given = {k: v for k, v in fields.items() if v is not None}
    if not given:
        return flt
    if not flt:
        return given
    return {"$and": [flt, given]}


def sort_of(text: str | None) -> list[tuple[str, int]] | None:
    """``sort=-started_at,task_id``: fields, each descending with a leading ``-``."""
    if text is None or not text.strip():
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part or part in ("-", "+"):
            raise BadRequest(f"sort: empty field name in {text!r}")
        if part[0] in "+-":
            out.append((part[1:], -1 if part[0] == "-" else 1))
        else:
            out.append((part, 1))
    return out


def page(
    query: Any, flt: dict[str, Any], limit: int, offset: int, sort: Any, projection: Any = None
) -> dict[str, Any]:
    """A list envelope: ``{"items", "count", "limit"}`` as Flowcept's, and ``offset`` and
    ``next_offset`` (None on the last page): one more record than asked is read to know."""
    found = query(flt, projection=projection, limit=limit + 1, sort=sort, skip=offset)
    items = found[:limit]
    more = len(found) > limit
    return {
        "items": items,
        "count": len(items),
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
    }


def attachment(name: str) -> dict[str, str]:
    """The headers of a download saved as ``name``: characters beyond ``[A-Za-z0-9._-]``
    (quotes, separators, control characters an id may hold) become ``_``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:200] or "download"
    return {"Content-Disposition": f'attachment; filename="{safe}"'}


def envelope(items: list[Any], limit: int) -> dict[str, Any]:
    return {"items": items, "count": len(items), "limit": limit}


# --- campaigns (a grouping key of workflows and tasks, not a table) ---------------------------


def campaigns(db: Any, campaign_id: str | None = None) -> list[dict[str, Any]]:
    """Campaign summaries, most recently active first: workflow and task counts, users,
    workflow names and the time range (``first_ts`` / ``last_ts``), as Flowcept derives them.

    Tasks are counted in SQL (grouped by campaign); workflows are read with a few fields.
    """
    wf_filter: dict[str, Any] = {"campaign_id": {"$exists": True}}
    task_filter: dict[str, Any] = {"campaign_id": {"$exists": True}}
    if campaign_id is not None:
        wf_filter = task_filter = {"campaign_id": campaign_id}
    out: dict[str, dict[str, Any]] = {}

    def one(cid: str) -> dict[str, Any]:
        return out.setdefault(
            cid,
            {
                "campaign_id": cid,
                "workflow_count": 0,
                "task_count": 0,
                "users": [],
                "workflow_names": [],
                "first_ts": None,
                "last_ts": None,
            },
        )

    def expand(rec: dict[str, Any], *values: Any) -> None:
        for v in values:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                rec["first_ts"] = v if rec["first_ts"] is None else min(rec["first_ts"], v)
                rec["last_ts"] = v if rec["last_ts"] is None else max(rec["last_ts"], v)

    fields = ["workflow_id", "campaign_id", "user", "name", "started_at", "ended_at"]
    for wf in db.workflow_query(wf_filter, projection=fields):
        rec = one(wf["campaign_id"])
        rec["workflow_count"] += 1
        for key, into in (("user", "users"), ("name", "workflow_names")):
            if wf.get(key) is not None and wf[key] not in rec[into]:
                rec[into].append(wf[key])
        expand(rec, wf.get("started_at"), wf.get("ended_at"))
    aggregation = [("count", "task_id"), ("min", "started_at"), ("max", "ended_at")]
    for row in db.task_query(task_filter, projection=["campaign_id"], aggregation=aggregation):
        if row.get("campaign_id") is None:
            continue
        rec = one(row["campaign_id"])
        rec["task_count"] += row["count_task_id"]
        expand(rec, row.get("min_started_at"), row.get("max_ended_at"))
    for rec in out.values():
        rec["users"].sort(key=str)
        rec["workflow_names"].sort(key=str)
    return sorted(
        out.values(),
        key=lambda r: (r["last_ts"] is None, -(r["last_ts"] or 0), str(r["campaign_id"])),
    )
