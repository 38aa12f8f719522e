"""The engines the warehouse writes to, as written interfaces, and those the settings enable.

``Target`` is one database (``duck.DuckTarget``, ``pg.PgTarget``) and ``EngineTx`` one of its
write transactions (``duck.DuckTx``, ``pg.PgTx``): ``ingest`` writes through these alone, so
an engine is a pair of classes that keep them. Rows are tuples in the table's column order
(``ddl.columns``); keys are a single-key table's key values, or tuples of a composite key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from provwh.core.config import Settings

log = logging.getLogger("provwh.warehouse")

# The application_name of the loader's PostgreSQL sessions: readers following the load order
# find the loader transactions still open by it (``query.paths.PgDialect.load_horizon``).
LOADER_APPLICATION = "provwh-loader"


class EngineTx(Protocol):
    """One open write transaction of an engine (committed by whoever opened it)."""

    def lock(self) -> None:
        """Begin deriving the data lineage: one derivation at a time, on one snapshot of the
        database (batch writes run beside it; their tasks stay pending for the next one)."""
        ...

    def announce(self, workflow_ids: set[str] | None) -> None:
        """Tell readers, when the transaction commits, that tasks or workflows of these
        workflows (None: of any) were written: PostgreSQL ``NOTIFY`` (``pg.LOADED_CHANNEL``);
        nothing on DuckDB, whose readers poll."""
        ...

    def ledger_known(self, hashes: list[str]) -> set[str]:
        """Which of these chunk hashes the ledger (``batches``) holds already."""
        ...

    def stored_keys(self, table: str, keys: list) -> set:
        """Which of ``keys`` (of a single-key table) are stored already."""
        ...

    def insert_new(self, table: str, rows: list[tuple]) -> set:
        """Insert the rows whose key is not stored yet; returns the keys inserted."""
        ...

    def insert_encoded(self, table: str, payload: Any) -> None:
        """Rows a worker process encoded (``Target.encoding``) straight into ``table``."""
        ...

    def insert(self, table: str, rows: list[tuple]) -> None:
        """Insert rows that cannot meet stored ones."""
        ...

    def insert_ignore(self, table: str, rows: list[tuple]) -> None:
        """Insert rows, leaving out those whose key is stored."""
        ...

    def replace(self, table: str, rows: list[tuple]) -> None:
        """Insert rows, replacing the stored ones with the same key."""
        ...

    def fetch(self, table: str, keys: list) -> list[dict[str, Any]]:
        """The stored rows with these keys, as dicts by column name."""
        ...

    def delete_keys(self, table: str, column: str, keys: list[str]) -> None:
        """Delete the rows whose ``column`` is one of ``keys``."""
        ...

    def delete_edges(self, edges: list[tuple[str, str, str]]) -> None:
        """Delete these ``(src_task_id, dst_task_id, kind)`` task edges."""
        ...

    def execute(self, sql: str) -> None:
        """Run one statement of provwh's own SQL (lineage derivation)."""
        ...

    def clear(self, table: str) -> None:
        """Delete every row of ``table`` that this transaction sees (``lineage_pending``)."""
        ...

    def analyze(self, changed: dict[str, int]) -> list[str]:
        """Refresh the planner's statistics of the tables that ``changed`` (rows written per
        table since their last refresh) made stale; returns the tables now up to date."""
        ...

    def scalar(self, sql: str) -> Any:
        """The first column of the first row of a query."""
        ...


TransactionFactory = Callable[[], AbstractContextManager[EngineTx]]


class Target(Protocol):
    """One database the loader writes to."""

    name: str  # for log lines and errors: the engine and where, password hidden
    encoding: str  # what worker processes encode rows as for it ("arrow", "copy")
    prefetch: bool  # normalizing ahead in a thread pays (the engine waits with the GIL released)

    def transaction(self) -> AbstractContextManager[EngineTx]:
        """A write transaction: committed when the block ends, rolled back when it raises."""
        ...

    def hold(self) -> AbstractContextManager[None]:
        """Keep the database open across several transactions (one pass, one command)."""
        ...

    def keep(self) -> None:
        """Keep the database open between uses until ``let_go`` (a file that is closed and
        opened again for every pass pays for both)."""
        ...

    def let_go(self) -> None:
        """Undo ``keep``."""
        ...

    def waited_for(self) -> bool:
        """Another process waits for this database (a DuckDB file it found locked)."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether an error is worth retrying (database down or locked, a lost connection)."""
        ...

    def is_data_error(self, exc: BaseException) -> bool:
        """Whether an error is the database refusing values of the rows written (too long to
        index, out of range...): the loader then sets aside the records it refuses."""
        ...

    def is_conflict(self, exc: BaseException) -> bool:
        """Whether an error is this transaction meeting another writer's (a key both inserted,
        a deadlock, a serialization failure): retried at once, without a warning."""
        ...

    def reset(self) -> None:
        """Forget the connection after a transient error; the next transaction reconnects."""
        ...

    def interrupt(self) -> None:
        """Cancel the statement running now, from another thread: its transaction fails and
        rolls back (or, caught committing, commits whole)."""
        ...

    def close(self) -> None: ...

    def alive(self) -> bool: ...


def targets_from_settings(settings: Settings) -> list[Target]:
    """DuckDB (``databases.duckdb.path``) and/or PostgreSQL (``databases.postgres.url``)."""
    targets: list[Target] = []
    if settings.duckdb_enabled:
        from provwh.warehouse.duck import DuckTarget

        targets.append(DuckTarget(settings.duckdb_path))
    if settings.postgres_enabled:
        from provwh.warehouse.pg import PgTarget

        targets.append(
            PgTarget(
                settings.postgres_url,
                migrate_on_startup=bool(settings.get("databases.postgres.migrate_on_startup")),
            )
        )
    return targets


def databases_alive(settings: Settings) -> bool:
    """Whether every enabled database answers (logged when one does not)."""
    ok = True
    for target in targets_from_settings(settings):
        if not target.alive():
            log.error("provwh: %s is not reachable", target.name)
            ok = False
    return ok
