"""Agents (PROV-AGENT, Flowcept's ``AgentObject``) through ``DBAPI``: save, look up, delete.

Agents live in the ``agents`` table (migration 0005), one row per ``agent_id``. Saving goes
through the warehouse's one way in (``writes.write_records``), so an agent saved twice is merged
as a task or workflow is (later non-null fields win, ``extra_metadata`` dicts merge); agent
records in batch files load the same way. Queries are ``DBAPI.query`` on the ``agents``
collection, with Mongo-style filters.
"""

from __future__ import annotations

from typing import Any

from provwh.core.ids import agent_id_for
from provwh.core.model import AgentObject
from provwh.query import find, paths, writes
from provwh.query.backends import Backend
from provwh.query.filters import FilterCompiler
from provwh.query.frag import sql


def save(backend: Backend, agent: Any) -> AgentObject:
    """Insert ``agent`` (an ``AgentObject`` or a dict), or merge it into the stored one.

    An agent without ``agent_id`` gets the one its ``name`` stands for (``agent_id_for``), as
    ``Flowcept(agent_name=...)`` does; one with neither is refused (ValueError). Returns the
    agent as an ``AgentObject`` (the object given, when it was one).
    """
    rec = writes.record_of(agent, "agent")
    if not rec.get("agent_id"):
        name = rec.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("an agent needs an agent_id or a name")
        rec["agent_id"] = agent_id_for(name)
        if isinstance(agent, AgentObject):
            agent.agent_id = rec["agent_id"]
    rec["agent_id"] = str(rec["agent_id"])
    writes.write_records(backend, [rec])
    return agent if isinstance(agent, AgentObject) else AgentObject.from_dict(rec)


def query(backend: Backend, filter: dict | None, **kwargs: Any) -> list[dict[str, Any]]:
    """Agent records matching ``filter`` (by ``registered_at``, then ``agent_id``)."""
    coll = paths.collection("agents")
    return find.find(
        backend,
        coll,
        filter,
        kwargs.get("projection"),
        find.limit_of(kwargs.get("limit", 0)),
        kwargs.get("sort"),
    )


def get(backend: Backend, agent_id: Any) -> AgentObject | None:
    """The agent with this id as an ``AgentObject``, or None."""
    found = query(backend, {"agent_id": str(agent_id)}, limit=1)
    return AgentObject.from_dict(found[0]) if found else None


def delete(backend: Backend, filter: dict) -> int:
    """Delete the agents matching ``filter`` (``{}``: all of them); returns how many."""
    if not isinstance(filter, dict):
        raise ValueError(f"filter must be a dict (use {{}} for all agents), got {filter!r}")
    backend._read_only()
    coll = paths.collection("agents")
    where = FilterCompiler(coll, backend.dialect).where(filter)
    with backend.write() as tx:
        return backend.execute(
            tx,
            sql(
                "DELETE FROM agents WHERE agent_id IN (SELECT t.agent_id FROM agents t WHERE {})",
                where,
            ),  # fmt: skip
        )
