"""Campaigns and agents derived from the records: ``DBAPI.derive_campaigns`` / ``derive_agents``.

Grouped in SQL (one row per distinct combination of the grouped fields), the sets and the
order made here, as Flowcept's web service shows them.
"""

from __future__ import annotations

from typing import Any

from provwh.query.backends import Backend
from provwh.query.filters import FilterCompiler
from provwh.query.frag import Frag, sql
from provwh.query.paths import collection
from provwh.warehouse.escape import unescape_text
from provwh.warehouse.times import datetime_to_epoch

# Flowcept's own placeholder agent ids, which its agent summaries leave out.
PLACEHOLDER_AGENTS = ("train_agent_id", "orchestrator_agent_id")


def derive_campaigns(backend: Backend, campaign_id: str | None = None) -> list[dict[str, Any]]:
    """One summary per campaign id found on workflows or tasks, latest activity first.

    ``{"campaign_id", "workflow_count", "task_count", "users", "workflow_names", "first_ts",
    "last_ts"}``: users and names of its workflows (sorted, empty ones left out); the time
    span covers its workflows' ``utc_timestamp`` and its tasks' ``started_at`` (earliest) and
    ``ended_at`` (latest), as epoch seconds. Campaigns without any time come last.
    """
    if campaign_id is not None and not isinstance(campaign_id, str):
        raise ValueError(f"campaign_id must be a string, got {campaign_id!r}")
    campaigns: dict[str, dict[str, Any]] = {}

    def entry(cid: str) -> dict[str, Any]:
        return campaigns.setdefault(
            cid,
            {"campaign_id": cid, "workflow_count": 0, "task_count": 0, "users": set(),
             "workflow_names": set(), "first_ts": None, "last_ts": None},
        )  # fmt: skip

    wf = FilterCompiler(collection("workflows"), backend.dialect)
    wf_rows = backend.query(
        sql(
            'SELECT {}, t."user", t."name", count(*), min(t."utc_timestamp"),'
            ' max(t."utc_timestamp") FROM workflows t WHERE t."campaign_id" IS NOT NULL AND {}'
            " GROUP BY 1, 2, 3",
            wf.text_col("campaign_id"),  # a long id as itself, not its digest key
            _campaign(wf, campaign_id),
        )
    )[1]
    for cid, user, name, n, first, last in wf_rows:
        rec = entry(unescape_text(cid))
        rec["workflow_count"] += n
        if user:
            rec["users"].add(unescape_text(user))
        if name:
            rec["workflow_names"].add(unescape_text(name))
        _widen(rec, first, last)
    tk = FilterCompiler(collection("tasks"), backend.dialect)
    task_rows = backend.query(
        sql(
            'SELECT {}, count(*), min(t."started_at"), max(t."ended_at")'
            ' FROM tasks t WHERE t."campaign_id" IS NOT NULL AND {} GROUP BY 1',
            tk.text_col("campaign_id"),
            _campaign(tk, campaign_id),
        )
    )[1]
    for cid, n, first, last in task_rows:
        rec = entry(unescape_text(cid))
        rec["task_count"] = n
        _widen(rec, first, last)
    out = sorted(campaigns.values(), key=lambda r: r["campaign_id"])
    for rec in out:
        rec["users"] = sorted(rec["users"])
        rec["workflow_names"] = sorted(rec["workflow_names"])
    out.sort(key=lambda r: (r["last_ts"] is not None, r["last_ts"] or 0.0), reverse=True)
    return out


def derive_agents(backend: Backend, filter: dict | None = None) -> list[dict[str, Any]]:
    """One summary per ``agent_id`` of the tasks matching ``filter`` (a task filter).

    ``{"agent_id", "task_count", "activities", "source_agent_ids", "campaign_ids",
    "workflow_ids", "last_active", "name", "workflow_id", "registered_at"}`` (Flowcept's
    shape). Agents are the ``agent_id`` of the tasks: ``last_active`` is the latest
    ``registered_at``, ``ended_at`` or ``started_at`` of its tasks, ``registered_at`` the
    earliest ``registered_at`` (else ``started_at``); an agent with a record (the ``agents``
    table) takes ``name``, ``workflow_id`` and ``registered_at`` from it, as Flowcept joins its
    agents collection; without one, ``name`` and ``workflow_id`` are None. Latest registered
    first, then by id.
    """
    comp = FilterCompiler(collection("tasks"), backend.dialect)
    rows = backend.query(
        sql(
            'SELECT t."agent_id", {}, t."source_agent_id", {}, {}, count(*),'
            ' max(t."registered_at"), max(t."ended_at"), max(t."started_at"),'
            ' min(COALESCE(t."registered_at", t."started_at"))'
            ' FROM tasks t WHERE t."agent_id" IS NOT NULL AND {} GROUP BY 1, 2, 3, 4, 5',
            *(comp.text_col(c) for c in ("activity_id", "campaign_id", "workflow_id")),
            comp.where(filter),
        )
    )[1]
    agents: dict[str, dict[str, Any]] = {}
    sets = ("activities", "source_agent_ids", "campaign_ids", "workflow_ids")
    for agent_id, *names, n, last_reg, last_end, last_start, first in rows:
        agent_id = unescape_text(agent_id)
        if agent_id in PLACEHOLDER_AGENTS:
            continue
        rec = agents.setdefault(
            agent_id,
            {"agent_id": agent_id, "task_count": 0, **{k: set() for k in sets},
             "last_active": None, "name": None, "workflow_id": None, "registered_at": None},
        )  # fmt: skip
        rec["task_count"] += n
        for key, value in zip(sets, names, strict=True):
            if value:
                rec[key].add(unescape_text(value))
        for ts in (last_reg, last_end, last_start):
            if ts is not None:
                ts = datetime_to_epoch(ts)
                rec["last_active"] = (
                    ts if rec["last_active"] is None else max(rec["last_active"], ts)
                )
        if first is not None:
            first = datetime_to_epoch(first)
            old = rec["registered_at"]
            rec["registered_at"] = first if old is None else min(old, first)
    _join_agent_records(backend, agents)
    out = sorted(agents.values(), key=lambda r: r["agent_id"])
    for rec in out:
        for key in sets:
            rec[key] = sorted(rec[key])
    out.sort(
        key=lambda r: (r["registered_at"] is not None, r["registered_at"] or 0.0), reverse=True
    )
    return out


def _join_agent_records(backend: Backend, agents: dict[str, dict[str, Any]]) -> None:
    """``name``, ``workflow_id`` and ``registered_at`` from the agents' records (the
    ``agents`` table), for those that have one; the others keep what their tasks say."""
    if not agents:
        return
    comp = FilterCompiler(collection("agents"), backend.dialect)
    rows = backend.query(
        sql(
            'SELECT {}, {}, t."workflow_id", t."registered_at" FROM agents t WHERE {}',
            comp.text_col("agent_id"),  # long ids and names as themselves (tasks hold them so)
            comp.text_col("name"),
            comp.where({"agent_id": {"$in": sorted(agents)}}),
        )
    )[1]
    for agent_id, name, workflow_id, registered_at in rows:
        rec = agents.get(unescape_text(agent_id))
        if rec is None:
            continue
        rec["name"] = None if name is None else unescape_text(name)
        rec["workflow_id"] = None if workflow_id is None else unescape_text(workflow_id)
        if registered_at is not None:
            rec["registered_at"] = datetime_to_epoch(registered_at)


def _campaign(comp: FilterCompiler, campaign_id: str | None) -> Frag:
    if campaign_id is None:
        return Frag("TRUE")
    return comp.where({"campaign_id": campaign_id})


def _widen(rec: dict[str, Any], *times: Any) -> None:
    for ts in times:
        if ts is None:
            continue
        ts = datetime_to_epoch(ts)
        rec["first_ts"] = ts if rec["first_ts"] is None else min(rec["first_ts"], ts)
        rec["last_ts"] = ts if rec["last_ts"] is None else max(rec["last_ts"], ts)
