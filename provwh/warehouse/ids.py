"""What a record is, and stable ids for records that arrive without one.

Flowcept writes some records without ``type`` (lightweight loops, older adapters) and some
without ``task_id`` or timestamps. The kind is then inferred from the fields present, and a
missing id becomes a UUIDv5 of the record's exact bytes plus the number of identical records
seen before it in the same batch: loading the same file into any database gives the same ids,
and two identical id-less records in one batch stay two tasks.
"""

from __future__ import annotations

import uuid
from hashlib import sha1
from typing import Any

from provwh.core.model import TASK_FIELDS

TASK, WORKFLOW, OBJECT = "task", "workflow", "object"

NAMESPACE = uuid.UUID("6f1d7a52-5d0b-4c7e-9a3e-0c2b8f4e1a77")

_WORKFLOW_ONLY = frozenset(
    (
        "name",
        "parent_workflow_id",
        "conf",
        "machine_info",
        "code_repository",
        "flowcept_settings",
        "flowcept_version",
        "interceptor_ids",
        "extra_metadata",
        "sys_name",
    )
)
_TASK_ONLY = frozenset(
    (
        "task_id",
        "activity_id",
        "parent_task_id",
        "telemetry_at_start",
        "telemetry_at_end",
        "submitted_at",
        "registered_at",
        "dependencies",
        "dependents",
        "stdout",
        "stderr",
        "group_id",
        "workflow_name",
    )
)
_ANY_TASK_FIELD = frozenset(TASK_FIELDS)
_TYPES = {TASK: TASK, WORKFLOW: WORKFLOW, OBJECT: OBJECT, "blob": OBJECT}


def record_kind(rec: dict[str, Any]) -> str | None:
    """``task``, ``workflow`` or ``object``; None when the record cannot be placed."""
    declared = rec.get("type")
    if type(declared) is str and declared in _TYPES:
        return _TYPES[declared]
    if "object_id" in rec:
        return OBJECT  # Flowcept's blob objects use ``type`` for their own category
    if declared is not None:
        return None
    keys = rec.keys()
    if not _TASK_ONLY.isdisjoint(keys):
        return TASK
    if not _WORKFLOW_ONLY.isdisjoint(keys):
        return WORKFLOW
    if not _ANY_TASK_FIELD.isdisjoint(keys):
        return TASK
    return None


class IdMaker:
    """Generated ids for one batch: content-based, numbered among identical records."""

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}

    def make(self, kind: str, raw: bytes) -> str:
        n = self._seen.get(raw, 0)
        self._seen[raw] = n + 1
        name = kind.encode() + b"\x00" + str(n).encode() + b"\x00" + raw
        digest = sha1(NAMESPACE.bytes + name).digest()  # RFC 4122 version 5
        return str(uuid.UUID(bytes=digest[:16], version=5))
