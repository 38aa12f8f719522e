"""The PostgreSQL engine: psycopg 3, COPY into staging tables, upserts into the targets.

Rows that may meet stored ones go through temporary staging tables (one per target, created
once per connection, emptied at commit) and ``INSERT ... SELECT ... ON CONFLICT``: merged
tasks and workflows (``DO UPDATE``), edges and lineage marks (``DO NOTHING``), objects. New
tasks and workflows, found by probing the primary key, and the rows of a task's child tables
(new by construction: the loader deletes a merged task's rows first) are copied straight into
their tables. Times travel as integer microseconds into staging tables and become timestamps
in SQL, exactly (no float rounding).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any

import orjson
import psycopg
from sqlalchemy.dialects import postgresql

from provwh.core.redact import redact_url
from provwh.warehouse import ddl
from provwh.warehouse.engines import LOADER_APPLICATION
from provwh.warehouse.errors import CannotConnect
from provwh.warehouse.migrate import ensure_schema, libpq_url, sqlalchemy_url
from provwh.warehouse.times import datetime_to_micros, micros_to_datetime

STAGED = ("tasks", "workflows", "data_objects", "agents", "task_edges", "lineage_pending")
# The loader refreshes a table's statistics (ANALYZE) once the rows written to it since the
# last refresh reach ANALYZE_MIN_ROWS + ANALYZE_FRACTION of its estimated rows: autovacuum's
# rule with a larger base, as autovacuum may be off, or late. Without statistics the planner
# guesses: a lineage aggregation over 10,000 tasks took 14.8 s against 1.6 s (performance.md).
ANALYZE_MIN_ROWS = 1_000
ANALYZE_FRACTION = 0.1


def analyze_due(changed: int, estimated: float) -> bool:
    """Whether ``changed`` rows since the last ANALYZE make a table's statistics stale."""
    return changed >= ANALYZE_MIN_ROWS + ANALYZE_FRACTION * max(estimated, 0.0)


# Errors worth retrying are those of the server or the connection, never of the data: a value
# the server refuses is refused again (issue 17: a key too long for a btree index was retried
# forever, and nothing behind its batch loaded). By SQLSTATE: connection exceptions (class 08)
# and these.
_TRANSIENT_STATES = frozenset(
    (
        "23505",  # unique_violation: a writer outside provwh raced us (probed again; a few times)
        "25P03",  # idle_in_transaction_session_timeout: the server closed the session
        "40001",  # serialization_failure
        "40003",  # statement_completion_unknown
        "40P01",  # deadlock_detected
        "53000",  # insufficient_resources
        "53100",  # disk_full
        "53200",  # out_of_memory
        "53300",  # too_many_connections
        "55P03",  # lock_not_available (lock_timeout)
        "57014",  # query_canceled (statement_timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down)
        "57P05",  # idle_session_timeout
        "58030",  # io_error
    )
)
_CONFLICT_STATES = frozenset(("23505", "40001", "40P01"))
# Data errors: class 22 (data exception: out of range, invalid text...), 23 (integrity
# constraint violation), 54 (program limit exceeded: an index row too big, a document too deep)
_DATA_CLASSES = ("22", "23", "54")
# Connections the server refuses for a reason waiting does not fix. libpq reports them before
# the session exists: no SQLSTATE, only its message.
_REFUSED = re.compile(
    r"FATAL:\s+(database \"[^\"]*\" does not exist|role \"[^\"]*\" does not exist"
    r"|password authentication failed.*|no pg_hba\.conf entry.*|.*authentication failed.*)"
)


def refused_reason(exc: BaseException) -> str | None:
    """Why the server refused to open a session (no such database or role, bad password),
    or None when the failure may pass (server down, starting up, too many connections)."""
    found = _REFUSED.search(str(exc))
    return found.group(1).strip() if found else None


LINEAGE_LOCK_KEY = 0x70726F7677680002  # pg_advisory_xact_lock: one lineage derivation at a time
# The channel a loader transaction that wrote tasks or workflows NOTIFYs (at its commit), with
# ``{"workflows": [ids]}`` (as the id columns hold them), or ``{"workflows": null}`` when they
# would not fit the payload: ``provwh serve`` LISTENs to wake its streams.
LOADED_CHANNEL = "provwh_loaded"
MAX_NOTIFY_BYTES = 4000  # of a payload (PostgreSQL takes up to 8000)


def loaded_payload(workflow_ids: set[str] | None) -> str:
    """The NOTIFY payload naming the workflows a transaction wrote (None: any)."""
    if workflow_ids is not None:
        text = orjson.dumps({"workflows": sorted(workflow_ids)}).decode()
        if len(text.encode()) <= MAX_NOTIFY_BYTES:
            return text
    return '{"workflows": null}'


_DIALECT = postgresql.dialect()


def _stage_name(table: str) -> str:
    return f"provwh_stg_{table}"


@cache
def _stage_ddl(table: str) -> str:
    cols = []
    for col, kind in zip(ddl.table(table).columns, ddl.column_kinds(table), strict=True):
        typ = "BIGINT" if kind == "time" else col.type.compile(dialect=_DIALECT)
        cols.append(f"{ddl.quote(col.name)} {typ}")
    return (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_stage_name(table)} ({', '.join(cols)})"
        " ON COMMIT DELETE ROWS"
    )


def _time_expr(col: str) -> str:
    # exact: whole seconds and the remaining microseconds are both small enough for float8
    return (
        f"(TIMESTAMP '1970-01-01' + ({col} / 1000000) * INTERVAL '1 second'"
        f" + ({col} % 1000000) * INTERVAL '1 microsecond')"
    )


@cache
def _select_from_stage(table: str) -> str:
    exprs = [
        _time_expr(ddl.quote(c)) if k == "time" else ddl.quote(c)
        for c, k in zip(ddl.columns(table), ddl.column_kinds(table), strict=True)
    ]
    return f"SELECT {', '.join(exprs)} FROM {_stage_name(table)}"


@cache
def _upsert_sql(table: str, action: str) -> str:
    keys = ddl.key_columns(table)
    conflict = ", ".join(ddl.quote(k) for k in keys)
    head = f"INSERT INTO {table} ({ddl.column_list(table)}) {_select_from_stage(table)}"
    if action == "new":
        returning = ", ".join(ddl.quote(k) for k in keys)
        return f"{head} ON CONFLICT ({conflict}) DO NOTHING RETURNING {returning}"
    if action == "ignore":
        return f"{head} ON CONFLICT ({conflict}) DO NOTHING"
    updates = ", ".join(
        f"{ddl.quote(c)} = EXCLUDED.{ddl.quote(c)}" for c in ddl.columns(table) if c not in keys
    )
    return f"{head} ON CONFLICT ({conflict}) DO UPDATE SET {updates}"


def _time_converter(table: str, loaded_at: datetime | None = None):
    """A row function turning microsecond columns into datetimes (memoized per value), and
    setting ``loaded_at`` (where the table has it) to the transaction's time."""
    at = ddl.loaded_at_index(table)
    idx = [i for i, k in enumerate(ddl.column_kinds(table)) if k == "time" and i != at]
    if not idx and at is None:
        return None
    last: list[Any] = [None, None]

    def convert(row: tuple) -> tuple:
        out = list(row)
        for i in idx:
            us = out[i]
            if us is not None:
                if us != last[0]:
                    last[0], last[1] = us, micros_to_datetime(us)
                out[i] = last[1]
        if at is not None:
            out[at] = loaded_at
        return out

    return convert


def _prefer_lz4(cur: psycopg.Cursor) -> None:
    """Compress large values (task rows with telemetry exceed the TOAST threshold) with lz4.

    Measured: a third less time inserting task rows than the default pglz. Servers before 14
    or built without lz4 keep their default.
    """
    try:
        cur.execute("SET default_toast_compression = 'lz4'")
    except psycopg.Error:
        pass


class PgTx:
    """One PostgreSQL write transaction (``engines.EngineTx``; see ``ingest.write``)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.cur = conn.cursor()
        self._staged: set[str] = set()
        self._loaded_at: datetime | None = None

    def _copy(self, target: str, table: str, rows: list[tuple], convert=None) -> None:
        sql = f"COPY {target} ({ddl.column_list(table)}) FROM STDIN"
        with self.cur.copy(sql) as cp:
            write = cp.write_row
            if convert is None:
                for row in rows:
                    write(row)
            else:
                for row in rows:
                    write(convert(row))

    def insert_encoded(self, table: str, payload: bytes) -> None:
        """Rows a worker encoded as COPY text (``copy_text.encode``) straight into ``table``.

        Their ``loaded_at``, the last column, is null (``\\N``) in every line: it becomes the
        transaction's time in one pass over the bytes (a newline only ever ends a line).
        """
        if payload:
            if ddl.loaded_at_index(table) is not None:
                stamp = f"\t{self.loaded_at}\n".encode()
                payload = payload.replace(b"\t\\N\n", stamp)
            with self.cur.copy(f"COPY {table} ({ddl.column_list(table)}) FROM STDIN") as cp:
                cp.write(payload)

    def _stage(self, table: str, rows: list[tuple]) -> None:
        if table in self._staged:
            self.cur.execute(f"DELETE FROM {_stage_name(table)}")
        self._staged.add(table)
        at = ddl.loaded_at_index(table)
        if at is not None:  # staged as microseconds, as every time column
            us = datetime_to_micros(self.loaded_at)
            rows = [(*r[:at], us, *r[at + 1 :]) for r in rows]
        self._copy(_stage_name(table), table, rows)

    def lock(self) -> None:
        # REPEATABLE READ: every statement of the derivation sees the same pending tasks and
        # values, and its final DELETE removes only the marks it saw, not those of a batch
        # that committed meanwhile (issue 13: loaders no longer wait for each other)
        self.cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        self.cur.execute("SELECT pg_advisory_xact_lock(%s)", (LINEAGE_LOCK_KEY,))

    @property
    def loaded_at(self) -> datetime:
        """The transaction's time (naive, UTC), the server's clock when first asked: one clock
        for every loader. Loaders write beside each other, so these times may commit out of
        order by up to a transaction's length (streams read back a window: ``query.loads``)."""
        if self._loaded_at is None:
            self.cur.execute("SELECT clock_timestamp() AT TIME ZONE 'UTC'")
            self._loaded_at = self.cur.fetchone()[0]
        return self._loaded_at

    def announce(self, workflow_ids: set[str] | None) -> None:
        """NOTIFY ``LOADED_CHANNEL`` (delivered when the transaction commits, not before)."""
        self.cur.execute("SELECT pg_notify(%s, %s)", (LOADED_CHANNEL, loaded_payload(workflow_ids)))

    def ledger_known(self, hashes: list[str]) -> set[str]:
        return self.stored_keys("batches", hashes)

    def insert_new(self, table: str, rows: list[tuple]) -> set:
        """Insert the rows whose key is not stored yet; returns their keys.

        Single-key tables (tasks, workflows): one index probe per key finds the stored ones,
        and the new rows are copied straight into the table, which halves the work of a
        staging round trip for the wide task rows. Another loader inserting one of these keys
        between the probe and the copy makes the copy fail with a unique violation: the loader
        retries the transaction, and the probe then finds it (``ingest.write``).
        """
        keys = ddl.key_columns(table)
        if len(keys) != 1:
            self._stage(table, rows)
            self.cur.execute(_upsert_sql(table, "new"))
            return set(self.cur.fetchall())
        stored = self.stored_keys(table, [r[0] for r in rows])
        new = [r for r in rows if r[0] not in stored] if stored else rows
        self.insert(table, new)
        return {r[0] for r in new}

    def stored_keys(self, table: str, keys: list) -> set:
        """Which of ``keys`` (of a single-key table) are stored already."""
        if not keys:
            return set()
        key = ddl.key_columns(table)[0]
        self.cur.execute(f"SELECT {key} FROM {table} WHERE {key} = ANY(%s)", (keys,))
        return {r[0] for r in self.cur.fetchall()}

    def replace(self, table: str, rows: list[tuple]) -> None:
        if rows:
            self._stage(table, rows)
            self.cur.execute(_upsert_sql(table, "update"))

    def insert_ignore(self, table: str, rows: list[tuple]) -> None:
        if rows:
            self._stage(table, rows)
            self.cur.execute(_upsert_sql(table, "ignore"))

    def insert(self, table: str, rows: list[tuple]) -> None:
        if rows:
            timed = ddl.loaded_at_index(table) is not None
            self._copy(
                table, table, rows, _time_converter(table, self.loaded_at if timed else None)
            )

    def fetch(self, table: str, keys: list) -> list[dict[str, Any]]:
        names = ddl.key_columns(table)
        if len(names) == 1:
            self.cur.execute(f"SELECT * FROM {table} WHERE {names[0]} = ANY(%s)", (list(keys),))
        else:
            kinds = dict(zip(ddl.columns(table), ddl.column_kinds(table), strict=True))
            casts = ", ".join(f"%s::{'bigint' if kinds[n] == 'int' else 'text'}[]" for n in names)
            cols = ", ".join(names)
            self.cur.execute(
                f"SELECT * FROM {table} WHERE ({cols}) IN (SELECT * FROM unnest({casts}))",
                [list(col) for col in zip(*keys, strict=True)],
            )
        cols = [d.name for d in self.cur.description]
        return [dict(zip(cols, r, strict=True)) for r in self.cur.fetchall()]

    def delete_keys(self, table: str, column: str, keys: list[str]) -> None:
        if keys:
            self.cur.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", (list(keys),))

    def execute(self, sql: str) -> None:
        self.cur.execute(sql)

    def clear(self, table: str) -> None:
        # not TRUNCATE: other loaders mark tasks meanwhile, and a derivation's snapshot
        # (REPEATABLE READ) deletes only the marks it saw
        self.cur.execute(f"DELETE FROM {table}")

    def analyze(self, changed: dict[str, int]) -> list[str]:
        """ANALYZE the tables made stale by the rows written (``changed``), judged against
        the planner's row estimates (``pg_class.reltuples``).

        ``pg_stat_user_tables.n_mod_since_analyze`` is no guide here: a session reports its
        counts to it later, so rows written before an ANALYZE may be counted after it.
        """
        if not any(n >= ANALYZE_MIN_ROWS for n in changed.values()):
            return []
        self.cur.execute(
            "SELECT c.relname, c.reltuples FROM pg_class c"
            " WHERE c.oid = ANY(ARRAY(SELECT to_regclass(t) FROM unnest(%s::text[]) t))",
            (list(changed),),
        )
        due = sorted(
            name
            for name, estimated in self.cur.fetchall()
            if analyze_due(changed.get(name, 0), estimated)
        )
        if due:
            self.cur.execute(f"ANALYZE {', '.join(due)}")
        return due

    def scalar(self, sql: str):
        self.cur.execute(sql)
        return self.cur.fetchone()[0]

    def delete_edges(self, edges: list[tuple[str, str, str]]) -> None:
        if edges:
            self.cur.execute(
                "DELETE FROM task_edges WHERE (src_task_id, dst_task_id, kind) IN"
                " (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
                [list(col) for col in zip(*edges, strict=True)],
            )


class PgTarget:
    """Loads into the PostgreSQL database at ``url`` (schema checked on every connect)."""

    prefetch = True  # normalizing the next batch overlaps with waiting for the server
    encoding = "copy"  # what worker processes encode rows as (workers.py)

    def __init__(
        self,
        url: str,
        migrate_on_startup: bool = False,
        connect_timeout: int = 5,
        application_name: str = LOADER_APPLICATION,
        jit: bool = False,
    ) -> None:
        self.url = sqlalchemy_url(url)
        self.conninfo = libpq_url(self.url)
        self.migrate_on_startup = migrate_on_startup
        self.connect_timeout = connect_timeout
        self.application_name = application_name  # readers tell loaders' sessions by it
        # PostgreSQL compiles a plan it costs above jit_above_cost (100,000 by default); the
        # loader's statements are costed high (a batch, every pending task) and run in
        # milliseconds to a second: deriving the lineage of 100,000 tasks spent 420 ms of 950
        # compiling. Loaders turn it off; query sessions keep the server's setting.
        self.options = None if jit else "-c jit=off"
        self.name = f"PostgreSQL {redact_url(self.conninfo)}"
        self._conn: psycopg.Connection | None = None

    def connect(self) -> psycopg.Connection:
        """The loader's connection: opened (and the schema checked) when there is none.

        A server that refuses the session for good (no such database, role or password)
        raises ``CannotConnect`` at once, saying so: no retrying as if the server were down.
        """
        if self._conn is None or self._conn.closed:
            try:
                conn = psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=self.connect_timeout,
                    application_name=self.application_name,
                    options=self.options,
                )
            except psycopg.OperationalError as exc:
                reason = refused_reason(exc)
                if reason is None:
                    raise
                raise CannotConnect(
                    f"{self.name}: {reason}; fix databases.postgres.url (PROVWH_POSTGRES_URL, "
                    "--postgres), or create the database (createdb)"
                ) from exc
            try:
                ensure_schema(conn, self.url, self.migrate_on_startup)
                with conn.cursor() as cur:
                    for table in STAGED:
                        cur.execute(_stage_ddl(table))
                    _prefer_lz4(cur)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @contextmanager
    def hold(self) -> Iterator[None]:
        yield

    def keep(self) -> None:
        pass  # its connection stays open anyway

    def let_go(self) -> None:
        pass

    def waited_for(self) -> bool:
        return False  # writers share the database

    @contextmanager
    def transaction(self) -> Iterator[PgTx]:
        conn = self.connect()
        with conn.transaction():
            yield PgTx(conn)

    @staticmethod
    def is_transient(exc: BaseException) -> bool:
        """Connection trouble, a server restart or shutdown, a serialization failure, a
        deadlock, a lock or statement timeout, a full disk: worth retrying. A value the
        server refuses (``is_data_error``) is not, a unique violation aside (a race)."""
        if isinstance(exc, psycopg.InterfaceError):  # the connection is closed or lost
            return True
        if not isinstance(exc, psycopg.Error):
            return False
        state = exc.sqlstate
        if state is None:  # libpq's own: the server cannot be reached, the connection broke
            return isinstance(exc, psycopg.OperationalError) and refused_reason(exc) is None
        return state.startswith("08") or state in _TRANSIENT_STATES

    @staticmethod
    def is_conflict(exc: BaseException) -> bool:
        """Another loader's transaction met this one: a key both inserted (the second waits
        for the first, then fails), a deadlock, a serialization failure (a derivation's)."""
        return isinstance(exc, psycopg.Error) and exc.sqlstate in _CONFLICT_STATES

    @staticmethod
    def is_data_error(exc: BaseException) -> bool:
        """The server (or psycopg, sending them) refuses the values of the rows: a value too
        long for an index, out of range, invalid text, a broken constraint. Writing the same
        rows fails the same way; the loader sets the refused records aside instead."""
        if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
            return True
        if isinstance(exc, psycopg.Error):
            return (exc.sqlstate or "")[:2] in _DATA_CLASSES
        return isinstance(exc, (ValueError, TypeError, UnicodeError, OverflowError))

    def reset(self) -> None:
        """Drop the connection after an error; the next transaction reconnects."""
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    close = reset

    def interrupt(self) -> None:
        conn = self._conn
        if conn is not None and not conn.closed:
            try:
                conn.cancel()
            except psycopg.Error:
                pass

    def alive(self) -> bool:
        try:
            with psycopg.connect(self.conninfo, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False
