"""PostgreSQL schema management with alembic, and the startup check of a database's revision.

An empty database is created at head on first use; a database behind head is refused with a
message naming ``provwh db upgrade`` unless ``databases.postgres.migrate_on_startup`` (or
``PROVWH_MIGRATE_ON_STARTUP=true``) asks to upgrade it; a database at a revision this provwh
does not know (written by a newer one) is always refused.
"""

from __future__ import annotations

from typing import Any

from provwh.core import resources
from provwh.core.extras import require_extra
from provwh.core.redact import redact_url
from provwh.warehouse.errors import SchemaError, WarehouseError
from provwh.warehouse.schema import SCHEMA_REVISION, metadata

# pg_advisory_lock key serializing schema creation/upgrades between provwh processes
SCHEMA_LOCK_KEY = 0x70726F7677680001


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://`` (SQLAlchemy) -> ``postgresql://`` (libpq / psycopg)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def sqlalchemy_url(url: str) -> str:
    from provwh.core.config import normalize_postgres_url

    return normalize_postgres_url(url)


def migrations_dir() -> str:
    """The alembic script folder shipped with provwh (``resources``)."""
    try:
        return str(resources.migrations_dir())
    except resources.ResourceMissing as exc:
        raise WarehouseError(str(exc)) from exc


def alembic_config(url: str | None = None) -> Any:
    """alembic's configuration for provwh's migrations (no alembic.ini needed)."""
    Config = require_extra("alembic.config", "postgres", "PostgreSQL schema management").Config
    cfg = Config()
    cfg.set_main_option("script_location", migrations_dir())
    if url:
        cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def _scripts() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    return _scripts().get_current_head()


def _is_known(revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def db_state(conn: Any) -> tuple[str | None, int]:
    """(alembic revision or None, number of other tables) of a psycopg connection's schema."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        n_tables = cur.fetchone()[0]
        cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not cur.fetchone()[0]:
            return None, n_tables
        cur.execute("SELECT version_num FROM alembic_version")
        row = cur.fetchone()
    return (row[0] if row else None), n_tables


def current_revision(url: str) -> str | None:
    import psycopg

    with psycopg.connect(libpq_url(sqlalchemy_url(url)), autocommit=True) as conn:
        return db_state(conn)[0]


def upgrade(url: str, revision: str = "head", sql: bool = False) -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision, sql=sql)


def downgrade(url: str, revision: str, sql: bool = False) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision, sql=sql)


def check(url: str) -> list[str]:
    """Differences between the models and a database at head (empty: they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = _settle_expression_indexes(conn, compare_metadata(ctx, metadata))
            return [_describe(d) for d in diffs]
    finally:
        engine.dispose()


def _settle_expression_indexes(conn: Any, diffs: list[Any]) -> list[Any]:
    """Drop the remove/add pair alembic reports for an index whose terms reflection cannot
    carry (``task_id COLLATE "C"`` comes back as ``task_id``) when the database's own
    definition of it has the model's terms exactly; a real difference stays reported."""
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex

    def terms(ddl: str) -> str:
        return ddl[ddl.index("(") + 1 : ddl.rindex(")")]

    removed = {d[1].name for d in diffs if isinstance(d, tuple) and d[0] == "remove_index"}
    settled = set()
    for d in diffs:
        if isinstance(d, tuple) and d[0] == "add_index" and d[1].name in removed:
            model = terms(str(CreateIndex(d[1]).compile(dialect=postgresql.dialect())))
            found = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
                {"name": d[1].name},
            ).scalar()
            if found is not None and terms(found) == model:
                settled.add(d[1].name)
    return [
        d
        for d in diffs
        if not (isinstance(d, tuple) and d[0] in ("add_index", "remove_index")
                and d[1].name in settled)
    ]  # fmt: skip


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # modify_* entries come grouped
        return "; ".join(_describe(d) for d in diff)
    op, *rest = diff
    names = []
    for item in rest:
        name = getattr(item, "name", None)
        if isinstance(item, str):
            names.append(item)
        elif name:
            names.append(str(name))
    return f"{op} {' '.join(names)}".strip()


def ensure_schema(conn: Any, url: str, migrate_on_startup: bool = False) -> None:
    """Make the database behind ``conn`` (psycopg, autocommit) ready for loading, or refuse."""
    revision, n_tables = db_state(conn)
    if revision == SCHEMA_REVISION:
        return
    where = f"PostgreSQL database {redact_url(libpq_url(url))}"
    if revision is None and n_tables:
        raise SchemaError(
            f"{where} holds tables but no provwh schema revision (alembic_version): "
            "use an empty database, or `provwh db upgrade` after checking it is provwh's"
        )
    if revision is not None and not _is_known(revision):
        raise SchemaError(
            f"{where} is at schema revision {revision}, unknown to this provwh (written by "
            f"a newer version?); it needs {SCHEMA_REVISION}: upgrade provwh"
        )
    if revision is not None and not migrate_on_startup:
        raise SchemaError(
            f"{where} is at schema revision {revision}, this provwh needs {SCHEMA_REVISION}: "
            "run `provwh db upgrade` (or set PROVWH_MIGRATE_ON_STARTUP=true)"
        )
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            if db_state(conn)[0] != SCHEMA_REVISION:  # another process may have done it
                upgrade(url, "head")
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
