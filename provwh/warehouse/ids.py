"""What a record is, and stable ids for records that arrive without one.

Flowcept writes some records without ``type`` (lightweight loops, older adapters) and some
without ``task_id`` or timestamps. The kind is then inferred from the fields present
(``core.model.record_kind``), and a missing id becomes a UUIDv5 of the record's exact bytes
plus the number of identical records seen before it in the same batch: loading the same file
into any database gives the same ids, and two identical id-less records in one batch stay two
tasks.
"""

from __future__ import annotations

import uuid
from hashlib import sha1

from provwh.core.model import AGENT, OBJECT, TASK, WORKFLOW, record_kind  # noqa: F401 (ids' callers)

NAMESPACE = uuid.UUID("6f1d7a52-5d0b-4c7e-9a3e-0c2b8f4e1a77")


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
