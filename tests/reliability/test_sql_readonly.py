"""``db.sql()`` / ``provwh sql`` stay read-only by construction (issue 17, item 2).

DuckDB: the statement and the one an EXPLAIN runs are checked, and user SQL runs in a read-only
transaction on a database without external access (files, network, extensions) and with its
configuration locked. PostgreSQL: a READ ONLY transaction, always rolled back, and no
advisory lock outlives the query.
"""

from __future__ import annotations

import os

import psycopg
import pytest
from reliability_helpers import load, open_db, task, write_batches

from provwh.cli import main
from provwh.query.api import DBAPI
from provwh.query.guard import ReadOnlyError
from provwh.warehouse.pg import LINEAGE_LOCK_KEY

SECRET = "provwh-secret-0f3c"  # the content of the files user SQL must not read


@pytest.fixture
def secrets(tmp_path):
    """A folder of files holding ``SECRET`` (CSV, text, JSON)."""
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "a.csv").write_text(f"name,value\nkey,{SECRET}\n")
    (folder / "b.txt").write_text(SECRET)
    (folder / "c.json").write_text(f'{{"k": "{SECRET}"}}\n')
    return folder


def _loaded(kind, where, tmp_path, n=3):
    paths = write_batches(tmp_path / "spool", [[task(f"t{i}") for i in range(n)]])
    load(kind, where, paths)
    return open_db(kind, where)


def _hostile_duckdb(out, secrets):
    """Statements that wrote files, changed settings, installed extensions or read files."""
    return [
        f"EXPLAIN ANALYZE COPY tasks TO '{out}'",
        f"EXPLAIN (ANALYZE) COPY tasks TO '{out}'",
        f"explain (analyze, format json) copy (select * from tasks) to '{out}' (format csv)",
        "EXPLAIN (ANALYZE) SET threads = 1",
        "EXPLAIN ANALYZE SET enable_external_access = true",
        "EXPLAIN ANALYZE SET lock_configuration = false",
        "EXPLAIN ANALYZE RESET enable_external_access",
        "INSTALL httpfs",
        "EXPLAIN ANALYZE INSTALL httpfs",
        "LOAD httpfs",
        f"EXPLAIN ANALYZE ATTACH '{out}.db' AS evil",
        f"SELECT * FROM read_csv('{secrets}/a.csv')",
        f"SELECT * FROM read_csv_auto('{secrets}/a.csv')",
        f"SELECT * FROM '{secrets}/a.csv'",
        f"SELECT content FROM read_text('{secrets}/b.txt')",
        f"SELECT content FROM read_blob('{secrets}/b.txt')",
        f"SELECT * FROM read_json('{secrets}/c.json')",
        f"SELECT * FROM glob('{secrets}/*')",
        f"EXPLAIN ANALYZE SELECT * FROM read_csv('{secrets}/a.csv')",
        f"WITH x AS (SELECT * FROM read_text('{secrets}/b.txt')) SELECT * FROM x",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/root/*')",
    ]


def _assert_refused(db, statement):
    with pytest.raises(ReadOnlyError) as err:
        db.sql(statement)
    assert str(err.value).startswith("read-only"), str(err.value)
    assert SECRET not in str(err.value)


def test_duckdb_sql_reaches_no_file_setting_or_extension(duck_path, tmp_path, secrets):
    db = _loaded("duckdb", duck_path, tmp_path)
    out = tmp_path / "stolen.csv"
    try:
        for statement in _hostile_duckdb(out, secrets):
            _assert_refused(db, statement)
        assert not os.path.exists(out) and not os.path.exists(f"{out}.db")
        # the database is unchanged, its settings too, and queries still run
        assert db.sql("SELECT count(*) AS n FROM tasks").to_dict("records") == [{"n": 3}]
        settings = db.sql(
            "SELECT name, value FROM duckdb_settings() WHERE name IN"
            " ('threads', 'enable_external_access', 'lock_configuration') ORDER BY name"
        ).to_dict("records")
        assert settings[0] == {"name": "enable_external_access", "value": "false"}
        assert settings[1] == {"name": "lock_configuration", "value": "true"}
        assert settings[2]["name"] == "threads" and settings[2]["value"] != "1"
        plan = db.sql("EXPLAIN ANALYZE SELECT count(*) FROM tasks")
        assert list(plan.columns) == ["explain_key", "explain_value"]
    finally:
        db.close()


def test_duckdb_files_backend_is_locked_down_too(tmp_path, secrets):
    paths = write_batches(tmp_path / "spool", [[task(f"t{i}") for i in range(2)]])
    db = DBAPI.from_files(paths)
    out = tmp_path / "stolen.csv"
    try:
        for statement in _hostile_duckdb(out, secrets):
            _assert_refused(db, statement)
        assert not os.path.exists(out)
        assert db.sql("SELECT count(*) AS n FROM tasks").to_dict("records") == [{"n": 2}]
    finally:
        db.close()


def test_duckdb_loader_in_the_same_process_still_loads(duck_path, tmp_path, secrets):
    """The lockdown stays on the open database: the loader sharing it still writes (Arrow)."""
    db = _loaded("duckdb", duck_path, tmp_path)
    try:
        with db.hold():
            _assert_refused(db, f"SELECT * FROM read_csv('{secrets}/a.csv')")
            more = write_batches(tmp_path / "more", [[task(f"u{i}") for i in range(4)]])
            result = load("duckdb", duck_path, more)
            assert result.tasks == 4
            assert db.sql("SELECT count(*) AS n FROM tasks").to_dict("records") == [{"n": 7}]
    finally:
        db.close()


def test_duckdb_connection_settings_do_not_leak(duck_path, tmp_path):
    """User SQL runs on a connection of its own: what it could set dies with the query."""
    db = _loaded("duckdb", duck_path, tmp_path)
    try:
        with db.hold():
            _assert_refused(db, "SET search_path = 'nowhere'")
            _assert_refused(db, "EXPLAIN ANALYZE SET search_path = 'nowhere'")
            assert db.sql("SELECT current_setting('search_path') AS p")["p"][0] in ("", "main")
            assert db.task_query({"task_id": "t1"})[0]["task_id"] == "t1"
    finally:
        db.close()


def test_postgres_write_inside_sql_is_refused(pg_url, tmp_path):
    db = _loaded("postgres", pg_url, tmp_path)
    try:
        for statement in (
            "WITH d AS (DELETE FROM tasks RETURNING task_id) SELECT * FROM d",
            "WITH u AS (UPDATE tasks SET status = 'X' RETURNING 1) SELECT * FROM u",
            "EXPLAIN (ANALYZE) DELETE FROM tasks",
            "EXPLAIN (ANALYZE, BUFFERS) INSERT INTO tasks (task_id) VALUES ('z')",
            "EXPLAIN ANALYZE COPY tasks TO '/tmp/provwh_never.csv'",
        ):
            _assert_refused(db, statement)
        # the transaction cannot be made writable from inside
        with pytest.raises(psycopg.errors.ActiveSqlTransaction):
            db.sql("SELECT set_config('transaction_read_only', 'off', false)")
        assert not os.path.exists("/tmp/provwh_never.csv")
        rows = db.sql("SELECT status, count(*) AS n FROM tasks GROUP BY status")
        assert rows.to_dict("records") == [{"status": "FINISHED", "n": 3}]
    finally:
        db.close()


def _loader_lock_free(url) -> bool:
    """Whether another session can take the loader's lock now (without waiting)."""
    from provwh.warehouse.migrate import libpq_url

    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        free = conn.execute("SELECT pg_try_advisory_lock(%s)", [LINEAGE_LOCK_KEY]).fetchone()[0]
        if free:
            conn.execute("SELECT pg_advisory_unlock(%s)", [LINEAGE_LOCK_KEY])
        return free


@pytest.mark.parametrize(
    "statement",
    [
        f"SELECT pg_advisory_lock({LINEAGE_LOCK_KEY})",
        f"SELECT pg_advisory_lock_shared({LINEAGE_LOCK_KEY})",
        f"SELECT pg_try_advisory_lock({LINEAGE_LOCK_KEY}) AS got",
        f"SELECT pg_advisory_lock({LINEAGE_LOCK_KEY}), 1 / 0",  # taken, then the query fails
    ],
)
def test_postgres_user_sql_cannot_keep_the_loader_lock(pg_url, tmp_path, statement):
    db = _loaded("postgres", pg_url, tmp_path)
    try:
        try:
            db.sql(statement)
        except psycopg.errors.DivisionByZero:
            pass
        assert _loader_lock_free(pg_url)  # the DBAPI's connection is still open here
        more = write_batches(tmp_path / "more", [[task(f"u{i}") for i in range(2)]])
        assert load("postgres", pg_url, more).tasks == 2
        assert db.sql("SELECT count(*) AS n FROM tasks").to_dict("records") == [{"n": 5}]
    finally:
        db.close()


def test_postgres_lock_through_the_sql_command(pg_url, tmp_path, capsys):
    db = _loaded("postgres", pg_url, tmp_path)
    db.close()
    status = main(["sql", "--postgres", pg_url, f"SELECT pg_advisory_lock({LINEAGE_LOCK_KEY})"])
    assert status == 0
    assert _loader_lock_free(pg_url)
    more = write_batches(tmp_path / "more", [[task("u0")]])
    assert load("postgres", pg_url, more).tasks == 1
    capsys.readouterr()
    assert main(["sql", "--postgres", pg_url, "DELETE FROM tasks"]) == 1
    assert "read-only: DELETE statements are refused" in capsys.readouterr().err
