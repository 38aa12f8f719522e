"""Ids, and which task and workflow are running in this context.

The running task and workflow live in ``ContextVar``s so nesting is right across threads and
asyncio tasks: capture reads them to set ``parent_task_id`` and ``workflow_id``; a flow run sets
``current_workflow_id`` so the tasks started inside it belong to its workflow.
"""

from __future__ import annotations

import itertools
import os
from contextvars import ContextVar
from typing import Any

current_task_id: ContextVar[str | None] = ContextVar("provwh_task", default=None)
# Set by code that runs a workflow of its own inside a session (a flow run): tasks started in
# its context belong to it rather than to the session's workflow.
current_workflow_id: ContextVar[str | None] = ContextVar("provwh_workflow", default=None)

# Task ids: a random per-process prefix plus a counter. A uuid4 costs ~2.6 us, this ~0.13 us,
# and ids stay unique across processes, hosts and forks.
# [prefix, counter], mutated in place so call paths may hold a reference to it.
ID_STATE: list[Any] = ["", None]


def _reset_ids() -> None:
    ID_STATE[0] = os.urandom(8).hex() + "-"
    ID_STATE[1] = itertools.count(1)


_reset_ids()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_ids)


def new_task_id() -> str:
    return ID_STATE[0] + str(next(ID_STATE[1]))


def new_uuid() -> str:
    import uuid  # lazy: uuid imports platform (~3 ms)

    return str(uuid.uuid4())


# The namespace of agent ids derived from names: ``agent_id_for("planner")`` is the same
# everywhere, so runs of one named agent share its id without configuring one.
AGENT_NAMESPACE = "5a0c3f0e-8b57-4a52-9d36-6b7c2f9e4d11"


def agent_id_for(name: str) -> str:
    """The stable id of the agent named ``name`` (a UUIDv5 of the name)."""
    import uuid

    return str(uuid.uuid5(uuid.UUID(AGENT_NAMESPACE), str(name)))
