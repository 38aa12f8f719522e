"""Read-only access to one warehouse database (DuckDB file or PostgreSQL) for the exports.

Exports read the tables directly with parameterized SQL; ``%s`` placeholders work on both
engines (they become ``?`` for DuckDB), so each query is written once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from provwh.core.redact import redact_url

STREAM_ROWS = 1000


class ExportError(Exception):
    """A user-facing export / import problem (one line, exit 1 on the command line)."""


class Source(Protocol):
    """An open connection to one database, as the exports read it."""

    kind: str  # "duckdb" or "postgres"
    name: str  # for messages: the engine and where, password hidden
    conn: Any  # the driver's connection (a PostgreSQL export deletes through it)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """The rows of a query with ``%s`` placeholders."""
        ...

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a query as dicts by column name."""
        ...

    def json_text(self, column: str) -> str:
        """SQL turning a JSON column into its text (JSONB and DuckDB JSON alike)."""
        ...

    def iter_chunks(
        self, sql: str, params: Sequence[Any] = (), size: int = STREAM_ROWS
    ) -> Iterator[list[tuple]]:
        """The rows of a query as lists of at most ``size`` tuples (narrow rows, or none
        sorted: a sort still holds them all in the engine)."""
        ...

    def iter_dicts(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        """The rows of a query as dicts, fetched ``STREAM_ROWS`` at a time."""
        ...

    def by_keys(self, table: str, key: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The rows of ``table`` whose ``key`` column is one of ``keys``, in their order
        (exports read a workflow ``STREAM_ROWS`` keys at a time: memory stays flat)."""
        ...


class _Rows:
    """``iter_dicts`` over a source's ``iter_chunks`` (which sets ``names`` per chunk)."""

    names: list[str]

    def iter_chunks(
        self, sql: str, params: Sequence[Any] = (), size: int = STREAM_ROWS
    ) -> Iterator[list[tuple]]:
        raise NotImplementedError

    def iter_dicts(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        for rows in self.iter_chunks(sql, params):
            names = self.names
            for r in rows:
                yield dict(zip(names, r, strict=True))


@dataclass
class DuckSource(_Rows):
    """A DuckDB file, opened read-only."""

    name: str
    conn: Any
    kind: str = "duckdb"
    names: list[str] = field(default_factory=list)  # the columns of the last chunk read

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.conn.execute(sql.replace("%s", "?"), list(params)).fetchall()

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql.replace("%s", "?"), list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def json_text(self, column: str) -> str:
        return f"CAST({column} AS VARCHAR)"

    def iter_chunks(
        self, sql: str, params: Sequence[Any] = (), size: int = STREAM_ROWS
    ) -> Iterator[list[tuple]]:
        cur = self.conn.cursor()  # its own: other queries run between its chunks
        try:
            cur.execute(sql.replace("%s", "?"), list(params))
            self.names = [d[0] for d in cur.description]
            while rows := cur.fetchmany(size):
                yield rows
        finally:
            cur.close()

    def by_keys(self, table: str, key: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        return self.dicts(
            f"SELECT t.* FROM (SELECT unnest(%s::VARCHAR[]) AS k,"
            f" generate_subscripts(%s::VARCHAR[], 1) AS n) q JOIN {table} t ON t.{key} = q.k"
            " ORDER BY q.n",
            [list(keys), list(keys)],
        )


@dataclass
class PgSource(_Rows):
    """A PostgreSQL database (psycopg 3)."""

    name: str
    conn: Any
    kind: str = "postgres"
    names: list[str] = field(default_factory=list)  # the columns of the last chunk read
    _cursors: int = 0

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, list(params))
            return cur.fetchall()

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, list(params))
            names = [d.name for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def json_text(self, column: str) -> str:
        return f"{column}::text"

    def iter_chunks(
        self, sql: str, params: Sequence[Any] = (), size: int = STREAM_ROWS
    ) -> Iterator[list[tuple]]:
        self._cursors += 1  # a server-side cursor, in the connection's transaction
        with self.conn.cursor(name=f"provwh_export_{self._cursors}") as cur:
            cur.execute(sql, list(params))
            while rows := cur.fetchmany(size):
                self.names = [d.name for d in cur.description]
                yield rows

    def by_keys(self, table: str, key: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        return self.dicts(
            f"SELECT t.* FROM unnest(%s::text[]) WITH ORDINALITY AS q(k, n)"
            f" JOIN {table} t ON t.{key} = q.k ORDER BY q.n",
            [list(keys)],
        )


@contextmanager
def open_source(
    duckdb_path: str | None = None, postgres_url: str | None = None
) -> Iterator[Source]:
    """Connect to the one database named (read-only for DuckDB)."""
    if bool(duckdb_path) == bool(postgres_url):
        raise ExportError("name exactly one database: a DuckDB file or a PostgreSQL URL")
    if duckdb_path:
        if not os.path.exists(duckdb_path):
            raise ExportError(f"{duckdb_path}: no such DuckDB file")
        import duckdb

        conn = duckdb.connect(duckdb_path, read_only=True)
        try:
            yield DuckSource(f"DuckDB {duckdb_path}", conn)
        finally:
            conn.close()
        return
    import psycopg

    from provwh.warehouse.migrate import libpq_url, sqlalchemy_url

    conninfo = libpq_url(sqlalchemy_url(postgres_url))
    conn = psycopg.connect(conninfo, connect_timeout=5)
    try:
        yield PgSource(f"PostgreSQL {redact_url(conninfo)}", conn)
    finally:
        conn.close()


def source_location(settings: Any, duckdb_path: str | None, postgres_url: str | None):
    """(duckdb_path, postgres_url) to read: the options given, else PostgreSQL when the
    settings enable it (the shared database), else the DuckDB file."""
    if duckdb_path or postgres_url:
        if duckdb_path and postgres_url:
            raise ExportError("pass --duckdb or --postgres, not both")
        return duckdb_path, postgres_url
    if settings.postgres_enabled:
        return None, settings.postgres_url
    if settings.duckdb_enabled:
        return settings.duckdb_path, None
    raise ExportError("no database enabled: pass --duckdb PATH or --postgres URL")
