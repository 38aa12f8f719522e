"""The analyst views of ``sql/views``: installed on PostgreSQL, DuckDB files and DuckDB over files.

One view per file, ``CREATE OR REPLACE VIEW <name> AS ...``, portable SQL that runs unchanged
on both engines; a view needing engine-specific SQL has ``<name>.postgresql.sql`` and
``<name>.duckdb.sql`` instead. Each installed view carries a comment ``provwh view <hash>``,
so ``ensure`` (run before the first user query of a connection) re-installs exactly when the
files changed, and costs one catalog query otherwise. The files also run by hand
(``psql -f sql/views/v_tasks.sql``).

Views read their tables with their owner's rights, so a role granted SELECT on the views
alone (``grant_readonly``) sees the views and nothing else.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from provwh.core import resources

log = logging.getLogger("provwh.query")

ENGINES = ("postgresql", "duckdb")
_LOCK_KEY = 0x70726F7677680003  # pg_advisory_xact_lock while views are (re)installed


@dataclass(frozen=True)
class View:
    name: str
    sql: str
    description: str

    @property
    def tag(self) -> str:
        digest = hashlib.sha256(self.sql.encode()).hexdigest()[:16]
        return f"provwh view {digest}: {self.description}"


@cache
def views(engine: str) -> tuple[View, ...]:
    """The views for ``engine`` (postgresql or duckdb), by name."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}")
    folder = resources.sql_dir().joinpath("views")
    if not folder.is_dir():
        raise resources.ResourceMissing(f"the views folder {folder} is missing: reinstall provwh")
    chosen: dict[str, str] = {}
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".sql"):
            continue
        parts = path.name[: -len(".sql")].split(".")
        if len(parts) == 1:
            chosen.setdefault(parts[0], path.read_text(encoding="utf-8"))
        elif len(parts) == 2 and parts[1] == engine:
            chosen[parts[0]] = path.read_text(encoding="utf-8")
    out = []
    for name, text in sorted(chosen.items()):
        comment = []
        for line in text.splitlines():
            if not line.startswith("--"):
                break
            comment.append(line[2:].strip())
        description = " ".join(comment)
        prefix = f"{name}:"
        if description.startswith(prefix):
            description = description[len(prefix) :].strip()
        out.append(View(name, text.strip().rstrip(";"), description))
    return tuple(out)


def view_names() -> list[str]:
    return [v.name for v in views("duckdb")]


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- DuckDB ----------------------------------------------------------------------------------


def _duck_installed(conn: Any) -> dict[str, str]:
    rows = conn.execute(
        "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal"
        " AND schema_name = current_schema() AND database_name = current_database()"
    ).fetchall()
    return {name: comment or "" for name, comment in rows}


def install_duckdb(conn: Any, force: bool = False) -> int:
    """Create or replace the views that are missing or changed; returns how many."""
    wanted = views("duckdb")
    installed = {} if force else _duck_installed(conn)
    todo = [v for v in wanted if installed.get(v.name) != v.tag]
    if not todo:
        return 0
    conn.begin()
    try:
        for v in todo:
            conn.execute(v.sql)
            conn.execute(f'COMMENT ON VIEW "{v.name}" IS {_quote_literal(v.tag)}')
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return len(todo)


# --- PostgreSQL ------------------------------------------------------------------------------

_PG_INSTALLED = (
    "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind = 'v' AND n.nspname = current_schema()"
)


class ViewsReadOnly(ValueError):
    """Views are missing or outdated and this connection may not (re)create them."""

    def __init__(self, where: str, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"the views {', '.join(names)} are missing or outdated in {where} and this role "
            "may not create them: the database owner installs them (`provwh db grant-readonly "
            "ROLE`, or any `provwh sql` query run as the owner)"
        )


_PG_MAY_CREATE = (
    "SELECT has_schema_privilege(current_schema(), 'CREATE')"
    " AND coalesce(bool_and(pg_has_role(c.relowner, 'USAGE')), TRUE) FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind = 'v' AND n.nspname = current_schema() AND c.relname = ANY(%s)"
)


def install_postgres(conn: Any, force: bool = False, where: str = "the database") -> int:
    """Create or replace the views on a psycopg connection (autocommit), in one transaction.

    ``CREATE OR REPLACE`` keeps grants; a view whose columns changed is dropped and created
    again (and loses its grants: run ``grant_readonly`` again). A role that may not create
    them (no CREATE on the schema, or views owned by another role) gets ``ViewsReadOnly``
    without any attempt: readers use the views there are.
    """
    import psycopg

    wanted = views("postgresql")
    with conn.cursor() as cur:
        cur.execute(_PG_INSTALLED)
        installed = {name: comment or "" for name, comment in cur.fetchall()}
        todo = [v for v in wanted if force or installed.get(v.name) != v.tag]
        if not todo:
            return 0
        cur.execute(_PG_MAY_CREATE, ([v.name for v in todo],))
        if not cur.fetchone()[0]:
            raise ViewsReadOnly(where, [v.name for v in todo])
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for v in todo:
            try:
                with conn.transaction():
                    cur.execute(v.sql)
            except psycopg.errors.InvalidTableDefinition:
                cur.execute(f'DROP VIEW IF EXISTS "{v.name}"')
                cur.execute(v.sql)
            cur.execute(f'COMMENT ON VIEW "{v.name}" IS {_quote_literal(v.tag)}')
    return len(todo)


def grant_readonly(url: str, role: str) -> list[str]:
    """Install the views on the database at ``url`` and give ``role`` read access to them only.

    The role must exist (``CREATE ROLE bi LOGIN PASSWORD ...``). Returns the views granted.
    """
    import psycopg
    from psycopg import sql

    from provwh.warehouse.migrate import libpq_url, sqlalchemy_url

    if not isinstance(role, str) or not role:
        raise ValueError("a role name is needed")
    with psycopg.connect(libpq_url(sqlalchemy_url(url)), autocommit=True) as conn:
        install_postgres(conn)
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        ident, where = sql.Identifier(role), sql.Identifier(schema)
        names = sql.SQL(", ").join(sql.Identifier(v.name) for v in views("postgresql"))
        with conn.transaction():
            conn.execute(
                sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(where, ident)
            )
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(where, ident))
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(names, ident))
    return [v.name for v in views("postgresql")]
