"""``provwh db upgrade|downgrade|current|check|grant-readonly``: the PostgreSQL schema (alembic
migrations), the schema revision of both databases, and read access to the views."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from provwh.cli.common import CliError, postgres_url_of, print_line, settings_of
from provwh.core.redact import redact_url


def _upgrade(args: argparse.Namespace) -> int:
    from provwh.warehouse import migrate  # alembic, sqlalchemy

    url = postgres_url_of(args)
    migrate.upgrade(url, args.revision, sql=args.sql)
    if not args.sql:
        print_line(f"{redact_url(url)}: at revision {migrate.current_revision(url)}")
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    from provwh.warehouse import migrate  # alembic, sqlalchemy

    url = postgres_url_of(args)
    migrate.downgrade(url, args.revision, sql=args.sql)
    if not args.sql:
        print_line(f"{redact_url(url)}: at revision {migrate.current_revision(url) or 'base'}")
    return 0


def _describe_revision(revision: str | None, head: str) -> str:
    if revision is None:
        return "empty (created at head on first load, or run `provwh db upgrade`)"
    return f"{revision} (head)" if revision == head else f"{revision} (head is {head})"


def _current(args: argparse.Namespace) -> int:
    from provwh.warehouse.schema import SCHEMA_REVISION  # sqlalchemy

    settings = settings_of(args)
    url = args.url or settings.postgres_url
    shown = False
    if url:
        from provwh.warehouse import migrate  # alembic, sqlalchemy

        url = migrate.sqlalchemy_url(url)
        revision = migrate.current_revision(url)
        print_line(f"PostgreSQL {redact_url(url)}: {_describe_revision(revision, SCHEMA_REVISION)}")
        shown = True
    if not args.url and settings.duckdb_enabled:
        path = os.path.abspath(settings.duckdb_path)
        if os.path.exists(path):
            import duckdb

            from provwh.warehouse.duck import schema_revision  # duckdb, pyarrow

            with duckdb.connect(path, read_only=True) as conn:
                revision = schema_revision(conn)
            print_line(f"DuckDB {path}: {_describe_revision(revision, SCHEMA_REVISION)}")
        else:
            print_line(f"DuckDB {path}: not created yet (created at head on first load)")
        shown = True
    if not shown:
        raise CliError("no database configured: pass --url or set PROVWH_POSTGRES_URL")
    return 0


def _check(args: argparse.Namespace) -> int:
    from provwh.warehouse import migrate  # alembic, sqlalchemy

    url = postgres_url_of(args)
    revision, head = migrate.current_revision(url), migrate.head_revision()
    if revision != head:
        raise CliError(
            f"{redact_url(url)} is at revision {revision or 'base'}, not {head}: "
            "run `provwh db upgrade` first"
        )
    diffs = migrate.check(url)
    if diffs:
        print_line(f"models and migrations differ ({len(diffs)}): a migration is missing")
        for diff in diffs:
            print_line(f"  {diff}")
        return 1
    print_line(f"models and migrations agree (revision {head})")
    return 0


# --- provwh db grant-readonly ROLE ---------------------------------------------------------------


def add_grant_readonly(db_subparsers: Any) -> argparse.ArgumentParser:
    """Add ``grant-readonly ROLE`` to the ``provwh db`` subparsers object; returns the parser."""
    p = db_subparsers.add_parser(
        "grant-readonly",
        help="give a (BI) role read access to the views v_* only (PostgreSQL)",
    )
    p.add_argument("role", help="an existing role (CREATE ROLE bi LOGIN PASSWORD '...')")
    p.add_argument("--url", help="database URL (default: databases.postgres.url)")
    p.set_defaults(func=run_grant_readonly)
    return p


def run_grant_readonly(args: argparse.Namespace, out: Any = None) -> int:
    """The handler of ``provwh db grant-readonly``; writes its line to ``out`` (stdout)."""
    from provwh.query.views import grant_readonly  # psycopg

    out = out or sys.stdout
    url = postgres_url_of(args)
    granted = grant_readonly(url, args.role)
    out.write(f"{args.role}: SELECT on {', '.join(granted)} ({redact_url(url)})\n")
    return 0


def add(sub: Any) -> None:
    """``provwh db ...``."""
    p = sub.add_parser("db", help="PostgreSQL schema (alembic migrations)")
    dbsub = p.add_subparsers(dest="db_command", metavar="COMMAND", required=True)

    def url_opt(q: argparse.ArgumentParser) -> None:
        q.add_argument("--url", help="database URL (default: databases.postgres.url)")

    q = dbsub.add_parser("upgrade", help="upgrade the database to a revision (default: head)")
    q.add_argument("revision", nargs="?", default="head")
    q.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    url_opt(q)
    q.set_defaults(func=_upgrade)
    q = dbsub.add_parser("downgrade", help="downgrade the database to a revision ('base': none)")
    q.add_argument("revision")
    q.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    url_opt(q)
    q.set_defaults(func=_downgrade)
    q = dbsub.add_parser("current", help="show the schema revision of the databases")
    url_opt(q)
    q.set_defaults(func=_current)
    q = dbsub.add_parser("check", help="check that the models and the migrations agree")
    url_opt(q)
    q.set_defaults(func=_check)
    add_grant_readonly(dbsub)
