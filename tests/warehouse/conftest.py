"""Real databases for the warehouse tests: PostgreSQL (never skipped) and DuckDB files.

The PostgreSQL server is, in order: ``PROVWH_TEST_POSTGRES_URL``, the one on 127.0.0.1:5432,
or a throwaway cluster started from the installed binaries. If none works the tests fail with
the reason. Each test gets its own database, copied from a template already at head.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tests import warehouse_helpers

from pg_support import TEMPLATE, with_db  # noqa: E402


def _create_db(admin_url: str, template: str | None) -> str:
    name = f"provwh_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        tpl = f" TEMPLATE {template}" if template else ""
        conn.execute(f"CREATE DATABASE {name}{tpl}")
    return name


def _drop_db(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_url(pg_server):
    """A fresh database at head (SQLAlchemy URL form), dropped after the test."""
    name = _create_db(pg_server, TEMPLATE)
    yield with_db(pg_server, name).replace("postgresql://", "postgresql+psycopg://", 1)
    _drop_db(pg_server, name)


@pytest.fixture
def make_pg_url(pg_server):
    """A factory of fresh databases at head, for tests that compare two loads."""
    names = []

    def make() -> str:
        names.append(_create_db(pg_server, TEMPLATE))
        return with_db(pg_server, names[-1]).replace("postgresql://", "postgresql+psycopg://", 1)

    yield make
    for name in names:
        _drop_db(pg_server, name)


@pytest.fixture
def empty_pg_url(pg_server):
    """A fresh empty database (no tables at all), dropped after the test."""
    name = _create_db(pg_server, None)
    yield with_db(pg_server, name).replace("postgresql://", "postgresql+psycopg://", 1)
    _drop_db(pg_server, name)


@pytest.fixture
def duck_path(tmp_path):
    return str(tmp_path / "warehouse.duckdb")


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request, tmp_path):
    """(kind, location, target) for each engine: the same test runs on both."""
    if request.param == "duckdb":
        from provwh.warehouse.duck import DuckTarget

        path = str(tmp_path / "warehouse.duckdb")
        return "duckdb", path, DuckTarget(path)
    from provwh.warehouse.pg import PgTarget

    url = request.getfixturevalue("pg_url")
    target = PgTarget(url)
    request.addfinalizer(target.close)
    return "postgres", url, target
