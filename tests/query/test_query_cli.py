"""``provwh sql`` on the configured database, and ``provwh db grant-readonly ROLE``."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
import uuid

import psycopg
import pytest
from query_helpers import parity_batches, write_batches

from provwh.cli.db import add_grant_readonly
from provwh.cli.sql import add as add_sql
from provwh.query.guard import ReadOnlyError
from provwh.query.views import view_names


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
        assert out.startswith(f"{role}: SELECT on v_activity_stats, v_agents, v_data_lineage,")
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


# --- a DuckDB file another process writes ------------------------------------------------------

HOLD = (
    "import duckdb, sys, time\n"
    "c = duckdb.connect(sys.argv[1])\n"
    "print('held', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
    "c.close()\n"
    "time.sleep(60)\n"
)


def _hold(path, seconds):
    """A process holding ``path`` open for writing for ``seconds`` (then open, without it)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def _provwh_sql(*args):
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "provwh.cli", "sql", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    return out, time.monotonic() - t0


@pytest.fixture
def duck_file(make_db, tmp_path):
    db = make_db("duckdb", write_batches(tmp_path / "spool", parity_batches()))
    db.close()
    return db.backend.path


def test_sql_on_a_locked_duckdb_file_waits_10_s_once_then_fails_in_one_line(duck_file):
    holder = _hold(duck_file, 600)
    try:
        out, seconds = _provwh_sql("--duckdb", duck_file, "SELECT count(*) FROM v_tasks")
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 1 and out.stdout == ""
    assert 10 <= seconds < 14  # the documented wait, once (was 22 s: views, then the query)
    assert out.stderr.count("\n") == 1, out.stderr  # one line: no warning about the views
    assert out.stderr.startswith(
        f"provwh: error: DuckDB file {duck_file} is held by another process (PID {holder.pid}: "
    )
    assert out.stderr.endswith(
        "and was still held after 10 s: a loader or a consumer writing it? Try again when it is"
        " done\n"
    )


def test_sql_on_a_duckdb_file_released_within_the_wait_answers(duck_file):
    holder = _hold(duck_file, 3)
    try:
        out, seconds = _provwh_sql("--duckdb", duck_file, "--csv", "SELECT count(*) FROM v_tasks")
    finally:
        holder.kill()
        holder.wait()
    assert (out.returncode, out.stdout, out.stderr) == (0, "count_star()\n18\n", "")
    assert 2 < seconds < 10


def test_sql_as_a_role_that_may_not_create_views(make_db, tmp_path, pg_server):
    """A reader uses the views there are; a missing one says who installs it; no warning."""
    db = make_db("postgres", write_batches(tmp_path / "spool", parity_batches()))
    url = db.backend.target.url
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    role = f"reader_{uuid.uuid4().hex[:8]}"
    reader_url = libpq.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
    assert reader_url != libpq
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
    try:
        out, _ = _provwh_sql("--postgres", reader_url, "--csv", "SELECT count(*) FROM tasks")
        assert (out.returncode, out.stdout, out.stderr) == (0, "count\n18\n", "")
        out, _ = _provwh_sql("--postgres", reader_url, "SELECT count(*) FROM v_tasks")
        assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
        assert out.stderr == (
            f"provwh: error: the views {', '.join(view_names())} are missing or outdated in "
            f"PostgreSQL {reader_url} and this role may not create them: the database owner "
            "installs them (`provwh db grant-readonly ROLE`, or any `provwh sql` query run as "
            "the owner)\n"
        )
        db.install_views()  # the owner
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        out, _ = _provwh_sql("--postgres", reader_url, "--csv", "SELECT count(*) FROM v_tasks")
        assert (out.returncode, out.stdout, out.stderr) == (0, "count\n18\n", "")
    finally:
        db.close()
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
