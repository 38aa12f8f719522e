"""``provwh check`` (which databases answer, what is installed, the effective settings) and
``provwh version``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from provwh.cli.common import print_line, settings_of
from provwh.core.redact import redact_url
from provwh.version import __version__

# distribution -> what needs it
PACKAGES: tuple[tuple[str, str], ...] = (
    ("duckdb", "required"),
    ("pyarrow", "required"),
    ("SQLAlchemy", "required"),
    ("orjson", "required"),
    ("psutil", "required"),
    ("PyYAML", "required"),
    ("psycopg", "extra postgres"),
    ("alembic", "extra postgres"),
    ("pandas", "extra pandas"),
    ("rich", "extra report"),
    ("matplotlib", "extra report"),
    ("prov", "extra prov"),
    ("nvidia-ml-py", "extra gpu"),
    ("redis", "redis transport"),
    ("dask", "extra dask"),
    ("mcp", "extra agents"),
    ("fastapi", "extra serve"),
    ("uvicorn", "extra serve"),
    ("mlflow-skinny", "extra mlflow"),
    ("tensorboardX", "extra tensorboard"),
)


def _package_lines() -> list[str]:
    from importlib import metadata  # email, zipfile...: a third of `provwh --help`'s time

    lines = []
    for dist, why in PACKAGES:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"  {dist:<14} {version:<16} ({why})")
    return lines


def _installation_lines() -> tuple[list[str], bool]:
    """The files provwh ships (SQL, views, migrations): present where this install reads them."""
    from provwh.core import resources

    problems = resources.missing()
    if problems:
        return [f"  missing: {p}" for p in problems], False
    from provwh.query.views import views
    from provwh.warehouse import revisions

    try:
        chain = revisions.chain()  # the scripts, read as the DuckDB upgrade reads them
    except ValueError as exc:
        return [f"  migrations: broken ({exc})"], False
    names = [v.name for v in views("duckdb")]
    return [
        f"  SQL: ok ({resources.sql_dir()}: {resources.LINEAGE_SQL}, {len(names)} views)",
        f"  migrations: ok ({resources.migrations_dir()}: {len(chain)} revisions)",
    ], True


def _duckdb_line(path: str) -> tuple[str, bool]:
    path = os.path.abspath(path)
    if not os.path.exists(path):
        return f"  DuckDB {path}: not created yet (created on first load)", True
    try:
        import duckdb

        from provwh.warehouse.duck import schema_revision  # duckdb, pyarrow

        with duckdb.connect(path, read_only=True) as conn:
            revision = schema_revision(conn)
        return f"  DuckDB {path}: ok (schema revision {revision or 'none'})", True
    except Exception as exc:  # a lock held by a loader is an answer too, but say so
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"  DuckDB {path}: cannot open ({first})", False


def _postgres_line(url: str) -> tuple[str, bool]:
    shown = redact_url(url)
    try:
        import psycopg

        from provwh.warehouse.migrate import libpq_url  # alembic, sqlalchemy

        with psycopg.connect(libpq_url(url), connect_timeout=3) as conn:
            exists = conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0]
            revision = (
                conn.execute("SELECT version_num FROM alembic_version").fetchone()
                if exists
                else None
            )
        rev = revision[0] if revision else "empty"
        return f"  PostgreSQL {shown}: ok (schema revision {rev})", True
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"  PostgreSQL {shown}: does not answer ({first})", False


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, value))
    return items


def _check(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    out = [f"provwh {__version__} (Python {sys.version.split()[0]})"]
    out.append(f"settings: {settings.path or 'defaults (no settings file)'}")
    out.extend(f"  warning: {text}" for text in settings.warnings)
    out.append("databases:")
    ok = True
    if settings.duckdb_enabled:
        line, good = _duckdb_line(settings.duckdb_path)
        out.append(line)
        ok &= good
    if settings.postgres_enabled:
        line, good = _postgres_line(settings.postgres_url)
        out.append(line)
        ok &= good
    if not (settings.duckdb_enabled or settings.postgres_enabled):
        out.append("  none enabled")
        ok = False
    out.append("installation:")
    lines, good = _installation_lines()
    out.extend(lines)
    ok &= good
    out.append("packages:")
    out.extend(_package_lines())
    out.append("effective settings:")
    values = settings.snapshot()
    values.pop("settings_path", None)
    out.extend(f"  {k} = {v}" for k, v in _flatten(values))
    print_line("\n".join(out))
    return 0 if ok else 1


def _version(args: argparse.Namespace) -> int:
    print_line(f"provwh {__version__}")
    return 0


def add(sub: Any) -> None:
    """``provwh check`` and ``provwh version``."""
    p = sub.add_parser(
        "check",
        help="which databases answer, which optional packages are present, the settings",
        description="Exit status 1 when an enabled database does not answer or this "
        "installation lacks a file provwh ships (SQL, views, migrations).",
    )
    p.set_defaults(func=_check)
    p = sub.add_parser("version", help="print the provwh version")
    p.set_defaults(func=_version)
