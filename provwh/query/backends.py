"""Where queries run: a PostgreSQL database, a DuckDB file, or DuckDB over batch files.

Each backend runs provwh's own SQL (``query``), a user's read-only SQL (``user_query``) and
the loader's transactions for writes (``write``). Connections are made on first use:

- PostgreSQL: psycopg connections (the loader target's, so the schema check and reconnect
  logic are the warehouse's), ``connections`` of them at most, one per call in progress (a
  thread keeps its own through nested calls and a write's transaction); one by default.
- DuckDB file: ``warehouse.duck.session`` for every call, so the file is shared with the
  in-process loader and left free for other processes between calls; ``hold()`` keeps it open
  across many calls. A file another process is writing is retried for ``lock_timeout`` s.
  A server's (``idle_release``): the file is held open while calls keep coming and reads run
  concurrently, each thread on a cursor of its own (``duckhold.HeldFile``).
- Files: an in-memory DuckDB database the batch files were loaded into (``files.py``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from provwh.core.text import first_line
from provwh.query import views
from provwh.query.frag import Frag, render
from provwh.query.guard import ReadOnlyError, check_read_only, explained
from provwh.query.paths import DUCK, PG, Dialect
from provwh.query.results import loads_json
from provwh.warehouse.engines import EngineTx

Rows = tuple[list[str], list[tuple]]


class Backend(Protocol):
    """Where a DBAPI's queries run; the backends below subclass it for its defaults."""

    dialect: Dialect
    name: str = ""
    writable: bool = True

    def query(self, frag: Frag, jit: bool = True) -> Rows:
        """Column names and rows of provwh's own SQL. ``jit=False``: a plan whose cost the
        planner puts far above its work (it stops early) is not compiled (PostgreSQL's JIT)."""
        ...

    def user_query(self, text: str, params: Any = None) -> Rows:
        """Column names and rows of one read-only statement of a user's (else ReadOnlyError)."""
        ...

    def write(self) -> AbstractContextManager[EngineTx]:
        """A write transaction of the warehouse's engine (``warehouse.engines.EngineTx``)."""
        ...

    def execute(self, tx: Any, frag: Frag) -> int:
        """Run a write statement in the write transaction ``tx``; returns the rows it touched."""
        ...

    def fetch(self, tx: Any, frag: Frag) -> Rows:
        """Run a query inside the write transaction ``tx``."""
        ...

    def install_views(self, force: bool = False) -> int:
        """Install the views that are missing or changed; returns how many were."""
        ...

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the database open across several calls (a DuckDB file: one connection)."""
        yield

    def alive(self) -> bool: ...

    def close(self) -> None:
        pass

    def _read_only(self) -> None:
        if not self.writable:
            raise ReadOnlyError(f"{self.name} is read-only")


# --- PostgreSQL -------------------------------------------------------------------------------


QUERY_APPLICATION = "provwh"  # the application_name of query sessions (loaders': engines.py)


class PgBackend(Backend):
    dialect = PG

    def __init__(self, url: str, migrate_on_startup: bool = False, connections: int = 1) -> None:
        self.url, self.migrate_on_startup = url, migrate_on_startup
        self.target = self._new_target()
        self.name = self.target.name
        self.connections = max(1, int(connections))
        self._targets = [self.target]  # every connection's target; _idle: those free now
        self._idle = [self.target]
        self._cv = threading.Condition()
        self._local = threading.local()  # the target this thread's call runs on

    def _new_target(self) -> Any:
        from provwh.warehouse.pg import PgTarget

        return PgTarget(
            self.url,
            migrate_on_startup=self.migrate_on_startup,
            application_name=QUERY_APPLICATION,
            jit=True,
        )

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        """A target (a connection) of this thread's: the one it is using, else a free one, a
        new one while under ``connections``, else the first freed."""
        held = getattr(self._local, "target", None)
        if held is not None:
            yield held
            return
        with self._cv:
            while not self._idle and len(self._targets) >= self.connections:
                self._cv.wait()
            if self._idle:
                target = self._idle.pop()
            else:
                target = self._new_target()
                self._targets.append(target)
        self._local.target = target
        try:
            yield target
        finally:
            self._local.target = None
            with self._cv:
                self._idle.append(target)
                self._cv.notify()

    def _cursor(self, conn: Any, json_as_text: bool = False) -> Any:
        from psycopg.types.string import TextLoader

        json_loader, numeric_loader = _pg_loaders()
        cur = conn.cursor()
        loader = TextLoader if json_as_text else json_loader
        cur.adapters.register_loader("jsonb", loader)
        cur.adapters.register_loader("json", loader)
        cur.adapters.register_loader("numeric", numeric_loader)
        return cur

    def _run(self, work: Any) -> Any:
        """``work(conn)``, reconnecting once when the connection was lost."""
        import psycopg

        with self._connection() as target:
            for attempt in (1, 2):
                conn = target.connect()
                try:
                    return work(conn)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    target.reset()
                    if attempt == 2 or not conn.closed:
                        raise

    def query(self, frag: Frag, jit: bool = True) -> Rows:
        text, params = render(frag, "%s")

        def work(conn: Any) -> Rows:
            with contextlib.ExitStack() as stack:
                cur = stack.enter_context(self._cursor(conn))
                if not jit:
                    stack.enter_context(conn.transaction())
                    cur.execute("SET LOCAL jit = off")
                cur.execute(text, params)
                names = [d.name for d in cur.description]
                return names, cur.fetchall()

        return self._run(work)

    def user_query(self, text: str, params: Any = None) -> Rows:
        import psycopg
        from psycopg import errors

        check_read_only(text)

        def work(conn: Any) -> Rows:
            out: Rows = ([], [])
            try:
                with conn.transaction(), self._cursor(conn, json_as_text=True) as cur:
                    cur.execute("SET TRANSACTION READ ONLY")
                    try:
                        # prepared: the server refuses several commands in one string
                        cur.execute(text, params, prepare=True)
                    except errors.ReadOnlySqlTransaction as exc:
                        raise ReadOnlyError(f"read-only: {str(exc).strip()}") from None
                    if cur.description is not None:
                        out = [d.name for d in cur.description], cur.fetchall()
                    raise psycopg.Rollback()
            finally:
                _release_session_locks(conn)
            return out

        return self._run(work)

    @contextlib.contextmanager
    def write(self) -> Iterator[Any]:
        with self._connection() as target, target.transaction() as tx:
            yield tx

    def execute(self, tx: Any, frag: Frag) -> int:
        text, params = render(frag, "%s")
        tx.cur.execute(text, params)
        return max(tx.cur.rowcount, 0)

    def fetch(self, tx: Any, frag: Frag) -> Rows:
        text, params = render(frag, "%s")
        with self._cursor(tx.conn) as cur:
            cur.execute(text, params)
            return [d.name for d in cur.description], cur.fetchall()

    def install_views(self, force: bool = False) -> int:
        return self._run(lambda conn: views.install_postgres(conn, force, self.name))

    def alive(self) -> bool:
        try:
            self.query(Frag("SELECT 1"))
            return True
        except Exception:
            return False

    def close(self) -> None:
        """Close the connections (a later call opens them again)."""
        with self._cv:
            for target in self._targets:
                target.close()


def _release_session_locks(conn: Any) -> None:
    """Release the advisory locks user SQL took: session-level ones outlive the rollback, and
    one on the loader's key would stop every loader. A connection that cannot is closed (its
    locks go with it); the next call reconnects."""
    import psycopg

    if conn.closed:
        return
    try:
        conn.execute("SELECT pg_advisory_unlock_all()")
    except psycopg.Error:
        conn.close()


@functools.cache
def _pg_loaders() -> tuple[type, type]:
    """psycopg loaders: JSON through ``loads_json``; NUMERIC as int or float, as DuckDB gives."""
    from psycopg.adapt import Loader

    class JsonLoader(Loader):
        def load(self, data: Any) -> Any:
            return loads_json(bytes(data))

    class NumericLoader(Loader):
        def load(self, data: Any) -> Any:
            text = bytes(data).decode()
            if text.lstrip("-").isdigit():
                return int(text)
            return float(text)

    return JsonLoader, NumericLoader


# --- DuckDB -----------------------------------------------------------------------------------


# user SQL runs on a database that cannot reach files, the network or extensions, and whose
# settings are locked; both hold for the database's life (DuckDB cannot turn them back)
_DUCK_LOCKDOWN = (("enable_external_access", "false"), ("lock_configuration", "true"))


def lock_down(conn: Any) -> None:
    """Disable external access (files, network, extensions) and lock the configuration of the
    DuckDB database ``conn`` is on, for as long as it is open. provwh's own writes to it are
    unaffected: they go through Arrow, never through files."""
    for name, value in _DUCK_LOCKDOWN:
        current = conn.execute("SELECT current_setting(?)", [name]).fetchone()[0]
        if str(current).lower() != value:
            conn.execute(f"SET GLOBAL {name} = {value}")


def _duck_user_query(conn: Any, text: str, params: Any) -> Rows:
    """One read-only statement of a user's on ``conn``'s database (see ``guard``)."""
    import duckdb

    statement = check_read_only(text)
    _duck_statement_type(conn, statement)
    lock_down(conn)
    cur = conn.cursor()  # a connection of its own: nothing it sets outlives the query
    try:
        cur.execute(_duck_begin())
        try:
            cur.execute(statement, params)
            if cur.description is None:
                return [], []
            return [d[0] for d in cur.description], cur.fetchall()
        except duckdb.PermissionException as exc:
            raise ReadOnlyError(
                "read-only: sql() may not reach files, the network or extensions"
                f" ({first_line(exc)})"
            ) from None
        except duckdb.TransactionException as exc:
            if "read-only" not in str(exc):
                raise
            raise ReadOnlyError(f"read-only: {first_line(exc)}") from None
        finally:
            cur.rollback()
    finally:
        cur.close()


def _duck_statement_type(conn: Any, statement: str) -> None:
    """DuckDB's parser says the statement is a query (or the EXPLAIN of one), else ReadOnlyError."""
    import duckdb

    parsed = conn.extract_statements(statement)
    allowed = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
    if len(parsed) != 1 or parsed[0].type not in allowed:
        kind = parsed[0].type.name if parsed else "empty"
        raise ReadOnlyError(f"read-only: {kind} statements are refused; only queries run")
    if parsed[0].type == duckdb.StatementType.EXPLAIN:
        inner = conn.extract_statements(explained(statement))
        if len(inner) != 1 or inner[0].type != duckdb.StatementType.SELECT:
            kind = inner[0].type.name if inner else "empty"
            raise ReadOnlyError(f"read-only: EXPLAIN of {kind} statements is refused")


@functools.cache
def _read_only_begin_supported() -> bool:
    import duckdb

    with duckdb.connect() as conn:
        try:
            conn.execute("BEGIN TRANSACTION READ ONLY")
        except duckdb.ParserException:  # an older DuckDB: the lockdown and rollback remain
            return False
        conn.rollback()
        return True


def _duck_begin() -> str:
    return "BEGIN TRANSACTION READ ONLY" if _read_only_begin_supported() else "BEGIN TRANSACTION"


_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")


class DatabaseLocked(RuntimeError):
    """A DuckDB file another process kept open for writing longer than the wait."""

    def __init__(self, path: str, waited: float, exc: BaseException) -> None:
        self.path, self.waited = path, waited
        reason = first_line(exc)
        found = _HOLDER.search(reason)
        self.pid = int(found["pid"]) if found else None
        holder = f" (PID {self.pid}: {_command_of(self.pid, found['exe'])})" if found else ""
        if found is None and "lock" not in reason.lower():
            holder = f" ({reason})"
        super().__init__(
            f"DuckDB file {path} is held by another process{holder} and was still held after "
            f"{waited:g} s: a loader or a consumer writing it? Try again when it is done"
        )


def _command_of(pid: int, exe: str) -> str:
    """The command line of a local process (shortened), else the executable DuckDB named."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            words = fh.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return exe
    words[0] = os.path.basename(words[0])
    text = " ".join(" ".join(w.decode("utf-8", "replace").split()) for w in words if w)
    return text if len(text) <= 80 else text[:79] + "…"


class DuckBackend(Backend):
    dialect = DUCK

    def __init__(
        self,
        path: str | os.PathLike,
        lock_timeout: float = 10.0,
        external_access: bool = True,
        idle_release: float | None = None,
        max_hold: float = 30.0,
    ) -> None:
        """``external_access=False``: every query runs with external access disabled (no
        files, network or extensions: ``lock_down``), set on the file's database each time it
        is opened, after its schema is ensured (a server's reads).

        ``idle_release`` (a server's): reads keep the file open until no call came for that
        many seconds, or another process waits for it, or it was held ``max_hold`` s
        (``duckhold.HeldFile``); reads run concurrently, each thread on its own cursor.
        Writes go through the session as before (and share the open file)."""
        self.path = os.path.abspath(os.fspath(path))
        self.name = f"DuckDB {self.path}"
        self.lock_timeout = lock_timeout
        self.external_access = external_access
        self._local = threading.local()  # the cursor a thread's hold() reads on
        self.held = None
        if idle_release is not None:
            from provwh.query.duckhold import HeldFile

            self.held = HeldFile(
                self.path,
                self._pin,
                idle_release=idle_release,
                max_hold=max_hold,
                lock_timeout=lock_timeout,
            )

    def _pin(self, deadline: float) -> Any:
        """``warehouse.duck.pin``'s cursor on the file, retried until ``deadline`` while
        another process holds it; locked down like a session's."""
        from provwh.warehouse.duck import pin, unpin

        root = self._opened(lambda: pin(self.path), deadline)
        try:
            if not self.external_access:
                lock_down(root)
        except BaseException:
            unpin(self.path, root)
            raise
        return root

    def _opened(self, open_file: Callable[[], Any], deadline: float) -> Any:
        """``open_file()``, tried again until ``deadline`` while another process holds the
        file (waits doubling from 20 ms to 0.5 s); then ``DatabaseLocked``."""
        import duckdb

        delay = 0.02
        while True:
            try:
                return open_file()
            except (duckdb.IOException, duckdb.TransactionException) as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DatabaseLocked(self.path, self.lock_timeout, exc) from exc
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.5)

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Any]:
        """A connection to read on: the thread's hold's, a held file's cursor, a cursor of the
        file this process has open, or a session."""
        cur = getattr(self._local, "cursor", None)
        if cur is not None:
            yield cur
        elif self.held is not None:
            with self.held.cursor() as cur:
                yield cur
        else:
            from provwh.warehouse.duck import reading

            with reading(self.path) as cur:  # beside this process's loader, if it has one
                if cur is not None:
                    if not self.external_access:
                        lock_down(cur)
                    yield cur
                    return
            with self._session() as conn:
                yield conn

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        """The process's connection to the file, waiting while another process writes it."""
        from provwh.warehouse.duck import session

        stack = contextlib.ExitStack()
        conn = self._opened(
            lambda: stack.enter_context(session(self.path)), time.monotonic() + self.lock_timeout
        )
        with stack:
            if not self.external_access:
                lock_down(conn)
            yield conn

    def query(self, frag: Frag, jit: bool = True) -> Rows:
        text, params = render(frag, "?")
        with self._reader() as conn:
            cur = conn.execute(text, params)
            return [d[0] for d in cur.description], cur.fetchall()

    def user_query(self, text: str, params: Any = None) -> Rows:
        with self._reader() as conn:
            return _duck_user_query(conn, text, params)

    @contextlib.contextmanager
    def write(self) -> Iterator[Any]:
        from provwh.warehouse.duck import transaction

        with self._session() as conn, transaction(conn) as tx:
            yield tx

    def execute(self, tx: Any, frag: Frag) -> int:
        row = tx.conn.execute(*render(frag, "?")).fetchone()
        return int(row[0]) if row and isinstance(row[0], int) else 0

    def fetch(self, tx: Any, frag: Frag) -> Rows:
        cur = tx.conn.execute(*render(frag, "?"))
        return [d[0] for d in cur.description], cur.fetchall()

    def install_views(self, force: bool = False) -> int:
        with self._session() as conn:
            return views.install_duckdb(conn, force)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the file open (one connection) until the block ends; a held file's: this
        thread reads on one cursor of its own until then."""
        if self.held is None:
            with self._session():
                yield
        elif getattr(self._local, "cursor", None) is not None:
            yield
        else:
            with self.held.cursor() as cur:
                self._local.cursor = cur
                try:
                    yield
                finally:
                    self._local.cursor = None

    def alive(self) -> bool:
        try:
            self.query(Frag("SELECT 1"))
            return True
        except Exception:
            return False

    def close(self) -> None:
        """A held file is closed (once the calls in flight end); a later call opens it."""
        if self.held is not None:
            self.held.release()


class FilesBackend(Backend):
    """An in-memory DuckDB database loaded from batch files; read-only."""

    dialect = DUCK
    writable = False

    def __init__(self, conn: Any, paths: list[str]) -> None:
        self.conn = conn
        self.paths = paths
        self.name = f"DuckDB over {len(paths)} batch file{'s' if len(paths) != 1 else ''}"
        self._lock = threading.RLock()

    def query(self, frag: Frag, jit: bool = True) -> Rows:
        with self._lock:
            cur = self.conn.execute(*render(frag, "?"))
            return [d[0] for d in cur.description], cur.fetchall()

    def user_query(self, text: str, params: Any = None) -> Rows:
        with self._lock:
            return _duck_user_query(self.conn, text, params)

    @contextlib.contextmanager
    def write(self) -> Iterator[Any]:
        self._read_only()
        yield

    def alive(self) -> bool:
        return True

    def install_views(self, force: bool = False) -> int:
        with self._lock:
            return views.install_duckdb(self.conn, force)

    def close(self) -> None:
        with self._lock:
            self.conn.close()
