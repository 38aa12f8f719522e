"""``provwh sql`` on the configured database, and ``provwh db grant-readonly ROLE``."""

from __future__ import annotations

import argparse
import io
import uuid

import psycopg
import pytest
from query_helpers import parity_batches, write_batches

from provwh.cli.db import add_grant_readonly
from provwh.cli.sql import add as add_sql
from provwh.query.guard import ReadOnlyError


def _parser():
    parser = argparse.ArgumentParser(prog="provwh")
    parser.add_argument("--settings")
    sub = parser.add_subparsers(dest="command")
    add_sql(sub)
    db = sub.add_parser("db").add_subparsers(dest="db_command")
    add_grant_readonly(db)
    return parser


def _run(argv):
    args = _parser().parse_args(argv)
    out = io.StringIO()
    assert args.func(args, out=out) == 0
    return out.getvalue()


QUERY = "SELECT workflow_id, task_count, error_count FROM v_workflow_summary ORDER BY 1"
EXPECTED = [
    "workflow_id | task_count | error_count",
    "------------+------------+------------",
    "wf-chain    |          3 |           0",
    "wf-diamond  |          5 |           1",
    "wf-misc     |         10 |           1",
    "(3 rows)",
]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_sql_command_on_a_database(engine, make_db, tmp_path, set_env):
    db = make_db(engine, write_batches(tmp_path / "spool", parity_batches()))
    if engine == "duckdb":
        option = ["--duckdb", db.backend.path]
        set_env(PROVWH_DUCKDB_PATH=db.backend.path)
    else:
        option = ["--postgres", db.backend.target.url]
        set_env(PROVWH_POSTGRES_URL=db.backend.target.url)
    db.close()
    assert _run(["sql", *option, QUERY]).splitlines() == EXPECTED
    assert _run(["sql", QUERY]).splitlines() == EXPECTED  # as the settings say
    with pytest.raises(ReadOnlyError):
        _run(["sql", "DELETE FROM tasks"])
    mark = "%s" if engine == "postgres" else "?"
    query = f"SELECT task_count FROM v_workflow_summary WHERE workflow_id = {mark}"
    out = _run(["sql", "--param", "wf-misc", "--csv", query])
    assert out.splitlines() == ["task_count", "10"]


def test_sql_command_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no DuckDB file"):
        _run(["sql", "SELECT 1"])  # the default file was never created
    with pytest.raises(FileNotFoundError, match="no DuckDB file"):
        _run(["sql", "--duckdb", str(tmp_path / "nope.duckdb"), "SELECT 1"])
    with pytest.raises(ValueError, match="choose one source"):
        _run(["sql", "--duckdb", "a", "--postgres", "postgresql://x/y", "SELECT 1"])


def test_grant_readonly_gives_the_views_only(make_db, tmp_path, pg_server):
    db = make_db("postgres", write_batches(tmp_path / "spool", parity_batches()))
    url = db.backend.target.url
    role = f"bi_{uuid.uuid4().hex[:8]}"
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role}")
    try:
        out = _run(["db", "grant-readonly", role, "--url", url])
        assert out.startswith(f"{role}: SELECT on v_activity_stats, v_data_lineage,")
        with psycopg.connect(libpq) as conn:
            conn.execute(f"SET ROLE {role}")
            assert conn.execute("SELECT count(*) FROM v_tasks").fetchone() == (18,)
            assert conn.execute("SELECT count(*) FROM v_task_edges").fetchone() == (12,)
            for table in ("tasks", "task_values", "workflows", "data_objects"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    with conn.transaction():
                        conn.execute(f"SELECT count(*) FROM {table}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.transaction():
                    conn.execute("DELETE FROM v_tasks")
        with pytest.raises(psycopg.errors.UndefinedObject):
            _run(["db", "grant-readonly", "no_such_role_x", "--url", url])
    finally:
        db.close()
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")
