"""Real databases for the warehouse tests: PostgreSQL (never skipped) and DuckDB files.

The PostgreSQL server is, in order: ``PROVWH_TEST_POSTGRES_URL``, the one on 127.0.0.1:5432,
or a throwaway cluster started from the installed binaries. If none works the tests fail with
the reason. Each test gets its own database, copied from a template already at head.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tests import warehouse_helpers

from warehouse_helpers import PgCluster, can_connect, find_pg_bin, with_db  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEMPLATE = f"provwh_tpl_{uuid.uuid4().hex[:8]}"


def _start_cluster() -> tuple[PgCluster | None, str]:
    bindir = find_pg_bin()
    if bindir is None:
        return None, "no PostgreSQL binaries (initdb) found in /usr/lib/postgresql/*/bin or PATH"
    cluster = PgCluster(bindir)
    try:
        cluster.init()
        cluster.start()
    except Exception as exc:
        cluster.destroy()
        return None, f"could not start a throwaway cluster from {bindir}: {exc}"
    return cluster, ""


@pytest.fixture(scope="session")
def pg_server():
    """An admin URL (libpq form) of a PostgreSQL server the tests may create databases on."""
    reasons = []
    env_url = os.environ.get("PROVWH_TEST_POSTGRES_URL")
    cluster = None
    if env_url:
        url = env_url.replace("postgresql+psycopg://", "postgresql://", 1)
        if not can_connect(url):
            reasons.append(f"PROVWH_TEST_POSTGRES_URL={env_url} does not answer")
            url = None
    else:
        url = None
    if url is None:
        if can_connect(DEFAULT_URL):
            url = DEFAULT_URL
        else:
            reasons.append(f"{DEFAULT_URL} does not answer")
            cluster, why = _start_cluster()
            if cluster is None:
                reasons.append(why)
                pytest.fail("no PostgreSQL server for the warehouse tests: " + "; ".join(reasons))
            url = cluster.url()
    from provwh.warehouse import migrate

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    migrate.upgrade(with_db(url, TEMPLATE))
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
    if cluster is not None:
        cluster.destroy()


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
