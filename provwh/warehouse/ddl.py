"""DDL and column facts derived from the SQLAlchemy metadata, for code that talks DBAPI.

The loaders use psycopg and DuckDB's own API (COPY, Arrow), not SQLAlchemy sessions; this
module turns the one table definition into what they need: CREATE statements (DuckDB),
column lists, and a neutral "kind" per column for conversions.
"""

from __future__ import annotations

import re
from functools import cache

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    Integer,
    LargeBinary,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.schema import CreateTable

from provwh.warehouse.schema import LOADED_AT, LOADED_TABLES, TASK_CHILD_TABLES, metadata


class _DuckDDLDialect(PGDialect):
    """PostgreSQL's DDL compiler under another name: JSONB variants fall back to JSON."""

    name = "duckdb_ddl"


def table(name: str) -> Table:
    return metadata.tables[name]


@cache
def columns(name: str) -> tuple[str, ...]:
    return tuple(c.name for c in metadata.tables[name].columns)


@cache
def key_columns(name: str) -> tuple[str, ...]:
    return tuple(c.name for c in metadata.tables[name].primary_key.columns)


def column_kind(col) -> str:
    """text | json | time | int | float | bool | bytes (what a row value must become)."""
    t = col.type
    if isinstance(t, JSON):
        return "json"
    if isinstance(t, DateTime):
        return "time"
    if isinstance(t, (BigInteger, Integer, SmallInteger)):
        return "int"
    if isinstance(t, Double):
        return "float"
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, LargeBinary):
        return "bytes"
    if isinstance(t, Text):
        return "text"
    raise TypeError(f"no kind for column {col} of type {t!r}")


@cache
def column_kinds(name: str) -> tuple[str, ...]:
    return tuple(column_kind(c) for c in metadata.tables[name].columns)


@cache
def loaded_at_index(name: str) -> int | None:
    """The position of ``loaded_at`` in a table's rows (the last column), or None when the
    table has none: the engines set it to the transaction's time as they write a row."""
    if name not in LOADED_TABLES:
        return None
    names = columns(name)
    assert names[-1] == LOADED_AT, names
    return len(names) - 1


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@cache
def column_list(name: str) -> str:
    return ", ".join(quote(c) for c in columns(name))


# Tables DuckDB gets without a primary key: rows only ever inserted (after deleting a merged
# task's rows), never upserted, so the key would cost index upkeep and memory for nothing.
DUCKDB_UNKEYED = frozenset(TASK_CHILD_TABLES)
_PK = re.compile(r",\s*CONSTRAINT \w+ PRIMARY KEY \([^)]*\)")


def duckdb_create_statements() -> list[str]:
    """CREATE statements for DuckDB, in dependency order.

    The same tables and columns as PostgreSQL. Secondary indexes are left out: DuckDB
    answers the query layer's lookups by scanning its columnar storage (zone maps),
    and ART indexes would slow every batch and grow in memory with the table.
    """
    return [duckdb_create_statement(tbl.name) for tbl in metadata.sorted_tables]


@cache
def duckdb_create_statement(name: str) -> str:
    """DuckDB's CREATE statement of one table (see ``duckdb_create_statements``)."""
    sql = str(CreateTable(metadata.tables[name]).compile(dialect=_DuckDDLDialect())).strip()
    return _PK.sub("", sql) if name in DUCKDB_UNKEYED else sql
