"""Records in the order they loaded: what the loader wrote after a point (``loaded_at``).

Capture times say when a task ran; ``loaded_at`` (``warehouse.schema.LOADED_AT``) says when
the loader last wrote its row, inserted or merged: the time of its transaction's first write.
Reading by it, a follower (the server's live streams) sees each write once, a task captured
early and loaded late included, and a merged record again, as it now is. On DuckDB one writer
commits at a time, in load order. PostgreSQL loaders write beside each other, so a
transaction may commit rows stamped before rows another one committed already: a read there
stops at the start of the oldest loader transaction still open (the dialect's
``load_horizon``), and what that one commits is read next time, never skipped.

Rows are read in ``(loaded_at, key)`` order from a ``LoadCursor``: one transaction writes many
rows at the same time, and the key orders them, so a page may end in the middle of them and
the next one goes on from there, nothing lost or sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provwh.core.gcpause import gc_paused
from provwh.query.backends import Backend
from provwh.query.filters import FilterCompiler
from provwh.query.find import columns_for
from provwh.query.frag import Frag, Raw, all_of, sql
from provwh.query.paths import collection
from provwh.query.results import to_record
from provwh.warehouse.times import micros_to_datetime

# the collections whose table has ``loaded_at``
LOADED_COLLECTIONS = ("tasks", "workflows")
_AT, _KEY = "_provwh_loaded_at", "_provwh_key"


@dataclass(frozen=True)
class LoadCursor:
    """A point in load order: rows loaded after ``at`` (microseconds since the epoch, UTC;
    None: from the first row with a load time), and of the rows loaded at ``at`` itself, those
    whose key (as stored) sorts after ``key``: ``""`` takes them all, None none."""

    at: int | None = None
    key: str | None = None

    @property
    def seconds(self) -> float | None:
        """``at`` as epoch seconds (the streams' public cursor)."""
        return None if self.at is None else self.at / 1_000_000


def newest(backend: Backend, name: str) -> LoadCursor:
    """The cursor after everything loaded so far: where a follower starting now begins."""
    coll = _collection(name)
    col = Frag(f't."{_loaded_at()}"')
    q = sql(f"SELECT {{}} FROM {coll.table} t", backend.dialect.epoch_us(sql("max({})", col)))
    at = backend.query(q)[1][0][0]
    return LoadCursor(None if at is None else int(at), None)


def loaded_after(
    backend: Backend, name: str, filter: dict | None, cursor: LoadCursor, limit: int
) -> list[tuple[dict[str, Any], LoadCursor]]:
    """Up to ``limit`` records of ``name`` (``tasks`` or ``workflows``) matching ``filter``
    (a Mongo-style filter, as ``DBAPI.query``), loaded after ``cursor``, in load order; each
    with the cursor just past it (pass the last one to read on)."""
    coll = _collection(name)
    d = backend.dialect
    key = coll.keys[0]
    col, key_col = Frag(f't."{_loaded_at()}"'), Frag(f't."{key}"')
    after = sql("{} IS NOT NULL", col)
    if cursor.at is not None:
        at = micros_to_datetime(cursor.at)
        if cursor.key is None:
            after = sql("{} > {}", col, at)
        else:  # the range alone can use an index; the key decides among rows at ``at``
            after = sql("({} >= {} AND ({} > {} OR {} > {}))", col, at, col, at, key_col,
                        cursor.key)  # fmt: skip
    horizon = d.load_horizon()
    if horizon is not None:  # what open loader transactions may still commit is left for later
        (before,) = backend.query(horizon)[1][0]
        after = sql("({} AND {} < {})", after, col, before)
    comp = FilterCompiler(coll, d)
    columns = columns_for(coll, None, d)
    q = sql(
        f"SELECT {', '.join(columns)}, {{}} AS {_AT}, {{}} AS {_KEY} FROM {coll.table} t"
        " WHERE {} ORDER BY {}, {} LIMIT {}",
        d.epoch_us(col),
        key_col,
        all_of([comp.where(filter), after]),
        col,
        key_col,
        Raw(str(int(limit))),
    )
    with gc_paused():
        names, rows = backend.query(q)
        n = len(names) - 2
        return [
            (to_record(coll, names[:n], row[:n]), LoadCursor(int(row[n]), row[n + 1]))
            for row in rows
        ]


def _loaded_at() -> str:
    from provwh.warehouse.schema import LOADED_AT  # SQLAlchemy: not at import (api.py is light)

    return LOADED_AT


def _collection(name: str) -> Any:
    if name not in LOADED_COLLECTIONS:
        raise ValueError(f"records carry a load time in {' and '.join(LOADED_COLLECTIONS)} only")
    return collection(name)
