"""Real databases for the query tests: PostgreSQL (never skipped) and DuckDB files.

The PostgreSQL server is, in order: ``PROVWH_TEST_POSTGRES_URL``, the one on 127.0.0.1:5432,
or a throwaway cluster started from the installed binaries; if none works the tests fail
with the reasons. Databases are copied from a template already at the schema head.
"""

from __future__ import annotations

import pytest
from query_helpers import PgDatabases, load

ENGINES = ("duckdb", "postgres")


@pytest.fixture
def pg_url(pg_server):
    """A fresh database at the schema head (SQLAlchemy URL form), dropped after the test."""
    dbs = PgDatabases(pg_server, "provwh_q_")
    yield dbs.create()
    dbs.drop_all()


@pytest.fixture
def make_db(request, tmp_path):
    """``make_db(engine, paths=())``: a DBAPI on a fresh database of ``engine``, loaded."""
    from provwh.query.api import DBAPI

    opened = []

    def make(engine: str, paths: list[str] = ()):
        if engine == "duckdb":
            from provwh.warehouse.duck import DuckTarget

            path = str(tmp_path / f"w{len(opened)}.duckdb")
            if paths:
                load(DuckTarget(path), list(paths))
            db = DBAPI.from_duckdb(path)
        elif engine == "postgres":
            from provwh.warehouse.pg import PgTarget

            url = request.getfixturevalue("pg_url") if not opened else _extra_pg(request)
            if paths:
                target = PgTarget(url)
                load(target, list(paths))
            db = DBAPI.from_postgres(url)
        else:
            raise ValueError(engine)
        opened.append(db)
        return db

    yield make
    for db in opened:
        db.close()


def _extra_pg(request):
    dbs = PgDatabases(request.getfixturevalue("pg_server"), "provwh_q_")
    request.addfinalizer(dbs.drop_all)
    return dbs.create()
