"""The DuckDB engine: one connection per file and process, the schema, row writes via Arrow.

DuckDB lets one process write a file, and a connection must not be used by two threads at
once. ``session(path)`` hands out the process's connection for a file under a lock, opening
it on first use and closing it when the last user leaves, so other processes (``provwh load``,
a notebook) can open the file between two loader passes. Every user of the file in this
process (loaders, consumers, queries) should go through ``session``.

``pin(path)`` keeps the file open across sessions (a server between requests) and gives its
holder a cursor of its own, so its threads read concurrently beside the sessions. A process
that finds the file locked says so in ``<file>.waiting`` (``WAITING_SUFFIX``: its pid), so that
a holder who pins it (``provwh serve``) lets it go: see ``query/duckhold.py``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

import duckdb
import pyarrow as pa

from provwh.warehouse import ddl, lineage, revisions
from provwh.warehouse.errors import SchemaError
from provwh.warehouse.schema import SCHEMA_REVISION

_ARROW_TYPES = {
    "text": pa.string(),
    # JSON text we produced ourselves: Arrow's JSON type lets DuckDB skip validating it
    "json": pa.json_() if hasattr(pa, "json_") else pa.string(),
    "time": pa.timestamp("us"),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "bytes": pa.binary(),
}
_STORAGE_TYPES = {**_ARROW_TYPES, "json": pa.string()}


class _Handle:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.conn: duckdb.DuckDBPyConnection | None = None
        # a cursor of ``conn`` that runs nothing: readers take cursors of it beside the
        # session in progress (``reading``); ``root_lock`` orders their creation
        self.root: duckdb.DuckDBPyConnection | None = None
        self.root_lock = threading.Lock()
        self.users = 0

    def open(self, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
        """The connection, opened when it is not (the caller holds ``lock``)."""
        if self.conn is None:
            conn = open_file(self.path, memory_limit)
            self.root = conn.cursor()
            self.conn = conn
        return self.conn


_registry_lock = threading.Lock()
_handles: dict[str, _Handle] = {}


# DuckDB caches table blocks up to its memory limit (80% of RAM by default): a bound keeps a
# process's memory from growing with the size of the file (it spills and evicts beyond it).
DEFAULT_MEMORY_LIMIT = "1GB"
# A loader's bound (``DuckTarget``): it writes, and reads little back. Loading 1,000,000 tasks
# of benchmarks/load.py (2026-12-07): the loading process peaked at 1,527 MB RSS with 1 GB at
# 8,462 tasks/s, 1,033 MB with 512 MB (8,110), 930 MB with 384 MB (8,136): the same speed
# within this machine's spread, the derivation too (5.3-5.7 s). The first opener of a file in
# a process sets its bound: in the embedded default, the loader.
LOAD_MEMORY_LIMIT = "384MB"
# DuckDB checkpoints once its WAL passes this size (default 16 MB), and a checkpoint rewrites
# the row groups that grew since the last one, whole: with the default, loading rewrote each
# row group of the task tables again and again. Measured (100k tasks, 5,000 records a
# transaction): 4,464 tasks/s -> 5,841. Commits still go to the WAL, fsynced, so a crash
# loses nothing committed; what is not checkpointed yet stays in memory, bounded by this.
CHECKPOINT_THRESHOLD = "256MB"


@contextmanager
def session(
    path: str | os.PathLike, memory_limit: str | None = DEFAULT_MEMORY_LIMIT
) -> Iterator[duckdb.DuckDBPyConnection]:
    """This process's connection to the DuckDB file at ``path`` (schema ensured), exclusively.

    ``memory_limit`` applies when this call opens the file (the first user decides).
    """
    handle = _enter(os.path.abspath(os.fspath(path)))
    try:
        with handle.lock:
            yield handle.open(memory_limit)
    finally:
        _leave(handle)


@contextmanager
def reading(path: str | os.PathLike) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A cursor to read on, when this process has the file open: beside the session in
    progress (a loader's pass), not after it. DuckDB's transactions keep the two apart: the
    reader sees what was committed when its query began. None when the file is not open here
    (the caller opens a ``session``)."""
    with _registry_lock:
        handle = _handles.get(os.path.abspath(os.fspath(path)))
        if handle is None or handle.root is None:
            handle = None
        else:
            handle.users += 1  # the file stays open while this reads
    if handle is None:
        yield None
        return
    try:
        with handle.root_lock:
            cur = handle.root.cursor()
        try:
            yield cur
        finally:
            cur.close()
    finally:
        _leave(handle)


def _enter(key: str) -> _Handle:
    with _registry_lock:
        handle = _handles.get(key)
        if handle is None:
            handle = _handles[key] = _Handle(key)
        handle.users += 1
    return handle


def _leave(handle: _Handle) -> None:
    """One user less; the last one closes the file."""
    with _registry_lock:
        handle.users -= 1
        if handle.users == 0:
            if handle.conn is not None:
                handle.root.close()
                handle.conn.close()
                handle.conn = handle.root = None
            _handles.pop(handle.path, None)


def pin(
    path: str | os.PathLike, memory_limit: str | None = DEFAULT_MEMORY_LIMIT
) -> duckdb.DuckDBPyConnection:
    """Keep this process's connection to the file open until ``unpin``, without holding its
    session lock: returns a cursor of the holder's own (a connection to the same database,
    which it may use beside the sessions; DuckDB's transactions keep them apart). Raises what
    opening the file raises (a locked file: ``duckdb.IOException``)."""
    handle = _enter(os.path.abspath(os.fspath(path)))
    try:
        with handle.lock:
            return handle.open(memory_limit).cursor()
    except BaseException:
        _leave(handle)
        raise


def unpin(path: str | os.PathLike, cursor: duckdb.DuckDBPyConnection) -> None:
    """Give back ``pin``'s cursor: the file closes unless a session or another pin uses it."""
    try:
        cursor.close()
    finally:
        with _registry_lock:
            handle = _handles[os.path.abspath(os.fspath(path))]
        _leave(handle)


def interrupt(path: str | os.PathLike) -> None:
    """Cancel what this process's connection to the file runs now (safe from any thread)."""
    handle = _handles.get(os.path.abspath(os.fspath(path)))
    conn = handle.conn if handle is not None else None
    if conn is not None:
        try:
            conn.interrupt()
        except duckdb.Error:
            pass


def open_file(path: str, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    config = {"checkpoint_threshold": CHECKPOINT_THRESHOLD}
    if memory_limit:
        config["memory_limit"] = memory_limit
    try:
        conn = duckdb.connect(path, config=config)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            say_waiting(path)
        raise
    took_turn(path)
    try:
        ensure_schema(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


# ``<file>.waiting``: the pid of a process that found the file locked, written at each try
WAITING_SUFFIX = ".waiting"


def say_waiting(path: str) -> None:
    """Tell a process that holds the file between its uses (``pin``) that this one waits for
    it: ``<file>.waiting`` holds this pid, its time the try's. Nothing is lost if it cannot."""
    try:
        with open(path + WAITING_SUFFIX, "w") as fh:
            fh.write(str(os.getpid()))
    except OSError:
        pass


def waiting_pid(path: str) -> str | None:
    """The pid ``<file>.waiting`` holds (as written), or None when there is no note."""
    try:
        with open(path + WAITING_SUFFIX) as fh:
            return fh.read().strip()
    except OSError:
        return None


def took_turn(path: str) -> None:
    """This process opened the file: its ``<file>.waiting`` note, if any, is removed."""
    if waiting_pid(path) == str(os.getpid()):
        try:
            os.remove(path + WAITING_SUFFIX)
        except OSError:
            pass


def schema_revision(conn: duckdb.DuckDBPyConnection) -> str | None:
    found = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'alembic_version'"
        " AND table_schema = current_schema()"
    ).fetchone()[0]
    if not found:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def ensure_schema(conn: duckdb.DuckDBPyConnection, path: str) -> None:
    """Create the tables in a new file; refuse a file at another schema revision."""
    revision = schema_revision(conn)
    if revision == SCHEMA_REVISION:
        return
    if revision is None:
        others = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchone()[0]
        if others:
            raise SchemaError(
                f"DuckDB file {path} holds tables but no provwh schema version; "
                "use another file (databases.duckdb.path) or PROVWH_DUCKDB_PATH"
            )
        create_schema(conn)
        return
    later = [r for r in revisions.chain() if r.down_revision is not None]
    known = [r.down_revision for r in later]
    if revision in known:  # upgrade along the migration scripts' chain
        for step in later[known.index(revision) :]:
            conn.begin()
            for sql in step.duckdb_statements:
                conn.execute(sql)
            conn.execute("UPDATE alembic_version SET version_num = ?", [step.revision])
            conn.commit()
            revision = step.revision
        conn.begin()  # a revision may have marked tasks whose data edges it dropped
        lineage.derive(DuckTx(conn))
        conn.commit()
    if revision != SCHEMA_REVISION:
        raise SchemaError(
            f"DuckDB file {path} has schema revision {revision}, this provwh writes "
            f"{SCHEMA_REVISION}; it was written by another provwh version: upgrade provwh "
            "or use another file"
        )


def create_schema(conn: duckdb.DuckDBPyConnection) -> None:
    conn.begin()
    for sql in ddl.duckdb_create_statements():
        conn.execute(sql)
    conn.execute(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,"
        " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
    )
    conn.execute("INSERT INTO alembic_version VALUES (?)", [SCHEMA_REVISION])
    conn.commit()


def to_arrow(table: str, rows: list[tuple], names: tuple[str, ...] | None = None) -> pa.Table:
    """Rows (in the table's column order, or ``names``) as an Arrow table with the right types.

    The tuples become one struct array (Arrow turns rows into columns in C++), JSON columns as
    plain strings first: converting Python values straight to Arrow's JSON extension type
    takes a slow per-value path (measured: 43 ms against 4.5 ms for 1,000 task rows).
    """
    names = names or ddl.columns(table)
    kinds = dict(zip(ddl.columns(table), ddl.column_kinds(table), strict=True))
    storage = pa.struct([(n, _STORAGE_TYPES[kinds[n]]) for n in names])
    schema = pa.schema([(n, _ARROW_TYPES[kinds[n]]) for n in names])
    return pa.Table.from_struct_array(pa.array(rows, type=storage)).cast(schema)


@cache
def _selected(table: str) -> tuple[str, bool]:
    """The select list copying a staged table's rows into ``table``, and whether it takes
    the transaction's time as a parameter (for ``loaded_at``, which staged rows leave null)."""
    names = [ddl.quote(c) for c in ddl.columns(table)]
    at = ddl.loaded_at_index(table)
    if at is not None:
        names[at] = "CAST(? AS TIMESTAMP)"
    return ", ".join(names), at is not None


class DuckTx:
    """One DuckDB write transaction (``engines.EngineTx``; see ``ingest.write``)."""

    _n = 0

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self._loaded_at: datetime | None = None

    def _register(self, data: pa.Table) -> str:
        DuckTx._n += 1
        view = f"_provwh_stg_{DuckTx._n}"
        self.conn.register(view, data)
        return view

    def _view(self, table: str, rows: list[tuple], names=None) -> str:
        return self._register(to_arrow(table, rows, names))

    def _run_on(self, sql: str, data: pa.Table, params: list | None = None) -> list:
        """``sql`` with ``{view}`` standing for ``data``."""
        view = self._register(data)
        try:
            return self.conn.execute(sql.format(view=view), params).fetchall()
        finally:
            self.conn.unregister(view)

    def _copy_sql(self, table: str, verb: str) -> tuple[str, list | None]:
        """``<verb> INTO table (columns) SELECT ... FROM {view}``, ``loaded_at`` bound."""
        selected, timed = _selected(table)
        sql = f"{verb} INTO {table} ({ddl.column_list(table)}) SELECT {selected} FROM {{view}}"
        return sql, [self.loaded_at] if timed else None

    def lock(self) -> None:
        pass  # the session lock already makes this process the only writer (and the file
        # lock, the only process)

    @property
    def loaded_at(self) -> datetime:
        """The transaction's time (``schema.LOADED_AT``), taken when first asked: one writer at
        a time, so these times follow the order transactions commit."""
        if self._loaded_at is None:
            self._loaded_at = datetime.now(UTC).replace(tzinfo=None)
        return self._loaded_at

    def announce(self, workflow_ids: set[str] | None) -> None:
        pass  # DuckDB has no notifications: readers poll

    def ledger_known(self, hashes: list[str]) -> set[str]:
        return self.stored_keys("batches", hashes)

    def insert_new(self, table: str, rows: list[tuple]) -> set:
        keys = ddl.key_columns(table)
        returning = ", ".join(ddl.quote(k) for k in keys)
        sql, params = self._copy_sql(table, "INSERT")
        sql += f" ON CONFLICT DO NOTHING RETURNING {returning}"
        result = self._run_on(sql, to_arrow(table, rows), params)
        return {r[0] for r in result} if len(keys) == 1 else {tuple(r) for r in result}

    def insert_encoded(self, table: str, payload: pa.Table) -> None:
        """Rows a worker made into an Arrow table (``to_arrow``)."""
        if payload.num_rows:
            sql, params = self._copy_sql(table, "INSERT")
            self._run_on(sql, payload, params)

    def stored_keys(self, table: str, keys: list) -> set:
        """Which of ``keys`` (of a single-key table) are stored already."""
        if not keys:
            return set()
        key = ddl.key_columns(table)[0]
        sql = f"SELECT {key} FROM {table} WHERE {key} IN (SELECT unnest(?::VARCHAR[]))"
        return {r[0] for r in self.conn.execute(sql, [keys]).fetchall()}

    def insert(self, table: str, rows: list[tuple], verb: str = "INSERT") -> None:
        if rows:
            sql, params = self._copy_sql(table, verb)
            self._run_on(sql, to_arrow(table, rows), params)

    def replace(self, table: str, rows: list[tuple]) -> None:
        self.insert(table, rows, "INSERT OR REPLACE")

    def insert_ignore(self, table: str, rows: list[tuple]) -> None:
        self.insert(table, rows, "INSERT OR IGNORE")

    def _match(self, table: str, keys: list) -> tuple[str, list[tuple], tuple[str, ...]]:
        names = ddl.key_columns(table)
        rows = [k if isinstance(k, tuple) else (k,) for k in keys]
        cond = " AND ".join(f"t.{ddl.quote(c)} = k.{ddl.quote(c)}" for c in names)
        return cond, rows, names

    def fetch(self, table: str, keys: list) -> list[dict[str, Any]]:
        cond, rows, names = self._match(table, keys)
        view = self._view(table, rows, names)
        try:
            cur = self.conn.execute(f"SELECT t.* FROM {table} t JOIN {view} k ON {cond}")
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        finally:
            self.conn.unregister(view)

    def delete_keys(self, table: str, column: str, keys: list[str]) -> None:
        if keys:
            view = self._view("tasks", [(k,) for k in keys], ("task_id",))
            try:
                self.conn.execute(
                    f"DELETE FROM {table} WHERE {column} IN (SELECT task_id FROM {view})"
                )
            finally:
                self.conn.unregister(view)

    def execute(self, sql: str) -> None:
        self.conn.execute(sql)

    def clear(self, table: str) -> None:
        """The table dropped and created again: one writer at a time, so it holds only
        the rows this transaction sees. Deleting them instead costs the primary key's upkeep:
        measured after loading 100,000 tasks, 1.2 s for the DELETE and 1.1 s more at its
        commit, against nothing measurable for the two statements."""
        self.conn.execute(f"DROP TABLE {ddl.quote(table)}")
        self.conn.execute(ddl.duckdb_create_statement(table))

    def analyze(self, changed: dict[str, int]) -> list[str]:
        """Nothing to do: DuckDB keeps its tables' statistics up to date as it writes."""
        return list(changed)

    def scalar(self, sql: str):
        return self.conn.execute(sql).fetchone()[0]

    def delete_edges(self, edges: list[tuple[str, str, str]]) -> None:
        if edges:
            cond = (
                "e.src_task_id = k.src_task_id AND e.dst_task_id = k.dst_task_id"
                " AND e.kind = k.kind"
            )
            view = self._view("task_edges", edges)
            try:
                self.conn.execute(f"DELETE FROM task_edges e USING {view} k WHERE {cond}")
            finally:
                self.conn.unregister(view)


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[DuckTx]:
    """A write transaction on ``conn``: committed when the block ends, rolled back if it raises."""
    conn.begin()
    try:
        yield DuckTx(conn)
    except BaseException:
        try:
            conn.rollback()
        except duckdb.Error:
            pass
        raise
    conn.commit()


class DuckTarget:
    """Loads into the DuckDB file at ``path`` (DuckDB's memory bounded by ``memory_limit``)."""

    def __init__(
        self, path: str | os.PathLike, memory_limit: str | None = LOAD_MEMORY_LIMIT
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.memory_limit = memory_limit
        self.name = f"DuckDB {self.path}"

    encoding = "arrow"  # what worker processes encode rows as (workers.py)
    prefetch = False  # see pipeline.py: normalizing in a thread slows DuckDB down
    _kept: duckdb.DuckDBPyConnection | None = None  # keep()'s pin

    def keep(self) -> None:
        """Keep the file open between uses until ``let_go`` (a consumer between its passes:
        each close checkpoints, each open checks the schema). Nothing if it is locked now."""
        if self._kept is None:
            try:
                self._kept = pin(self.path, self.memory_limit)
            except Exception as exc:
                if not self.is_transient(exc):
                    raise

    def let_go(self) -> None:
        """Close what ``keep`` kept open (unless a session uses it: then when it ends)."""
        kept, self._kept = self._kept, None
        if kept is not None:
            unpin(self.path, kept)

    def waited_for(self) -> bool:
        """Another process found the file locked and waits for it (``<file>.waiting``)."""
        return waiting_pid(self.path) not in (None, "", str(os.getpid()))

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the file open (and this process its writer) for several transactions.

        If the file cannot be opened now (another process writes it), each transaction
        opens it and retries on its own.
        """
        cm = session(self.path, self.memory_limit)
        try:
            cm.__enter__()
        except Exception as exc:
            if not self.is_transient(exc):
                raise
            yield
            return
        try:
            yield
        finally:
            cm.__exit__(None, None, None)

    @contextmanager
    def transaction(self) -> Iterator[DuckTx]:
        with session(self.path, self.memory_limit) as conn, transaction(conn) as tx:
            yield tx

    @staticmethod
    def is_transient(exc: BaseException) -> bool:
        """A locked file (another process writes it) or an I/O hiccup: worth retrying."""
        return isinstance(exc, (duckdb.IOException, duckdb.TransactionException))

    @staticmethod
    def is_conflict(exc: BaseException) -> bool:
        """Never: one process writes a DuckDB file (its lock), one transaction at a time."""
        return False

    @staticmethod
    def is_data_error(exc: BaseException) -> bool:
        """DuckDB (or Arrow, on the way) refuses the values of the rows: out of range, not
        convertible, invalid input, a broken constraint. The same rows fail the same way."""
        return isinstance(
            exc,
            (
                duckdb.DataError,
                duckdb.IntegrityError,
                duckdb.InvalidInputException,
                ValueError,  # pyarrow's ArrowInvalid among them
                TypeError,
                UnicodeError,
                OverflowError,
            ),
        )

    def reset(self) -> None:
        pass  # sessions close with their last user

    def interrupt(self) -> None:
        interrupt(self.path)

    def close(self) -> None:
        self.let_go()

    def alive(self) -> bool:
        try:
            with session(self.path) as conn:
                conn.execute("SELECT 1").fetchone()
            return True
        except duckdb.Error:
            return False
