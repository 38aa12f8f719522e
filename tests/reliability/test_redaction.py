"""Credentials in URLs and connection strings never reach a record (issue 17, item 6).

A password in a URL's query string (``?password=...``, ``sslpassword``, ``token``) or in a
connection string held by an allow-listed environment variable (``password=...``) is hidden
in the settings snapshot, the recorded environment, the buffer file, the spool, the
workflows rows of both engines and ``provwh settings show``.
"""

from __future__ import annotations

import glob
import os

import duckdb
import psycopg
import pytest

from provwh import Flowcept, flowcept_task
from provwh.cli import main
from provwh.core.redact import redact_url
from provwh.warehouse.migrate import libpq_url

SECRETS = ("pwQUERY11", "pwSSL22", "pwENV33", "pwREDIS44", "pwTOKEN55", "pwODBC66")


@flowcept_task
def double(x):
    return x * 2


def _files_text(folder: str) -> str:
    text = []
    for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                text.append(fh.read().decode("utf-8", "replace"))
    return "\n".join(text)


def _duckdb_text(path: str) -> str:
    with duckdb.connect(path, read_only=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return "\n".join(str(conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables)


def _postgres_text(url: str) -> str:
    with psycopg.connect(libpq_url(url)) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        return "\n".join(
            str(conn.execute(f'SELECT t::text FROM "{t}" t').fetchall()) for t in tables
        )


def _assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} in {where}"


@pytest.fixture
def fresh_machine_info():
    """Machine info (with the environment) is read once a process: read it again here."""
    from provwh.capture import machine

    machine._machine_info.cache_clear()
    yield
    machine._machine_info.cache_clear()  # later tests must not see this test's environment


def test_query_string_passwords_never_stored(pg_url, set_env, tmp_path, capsys, fresh_machine_info):
    # trust authentication ignores the password: the capture really loads into PostgreSQL
    url = f"{pg_url}?password=pwQUERY11&application_name=provwh&sslpassword=pwSSL22"
    set_env(
        PROVWH_POSTGRES_URL=url,
        PROVWH_REDIS_URL="redis://:pwREDIS44@127.0.0.1:1/0?token=pwTOKEN55",
        SLURM_JOB_COMMENT="host=db port=5432 password=pwENV33 dbname=prov",
        OMPI_MCA_odbc="Driver=pg;UID=bob;PWD=pwODBC66;",
    )
    with Flowcept(workflow_name="redacted") as ctl:
        assert double(21) == 42
    spool = ctl.spool_dir

    with open("flowcept_buffer.jsonl", encoding="utf-8") as fh:
        _assert_clean(fh.read(), "the buffer file")
    _assert_clean(_files_text(spool), "the spool")
    _assert_clean(_duckdb_text("provwh.duckdb"), "the DuckDB tables")
    pg_text = _postgres_text(pg_url)
    assert "redacted" in pg_text  # the workflow was loaded there
    _assert_clean(pg_text, "the PostgreSQL tables")

    (wf,) = [r for r in Flowcept.read_buffer_file() if r.get("type") == "workflow"]
    settings = wf["flowcept_settings"]
    shown_url = f"{pg_url}?password=REDACTED&application_name=provwh&sslpassword=REDACTED"
    assert settings["databases"]["postgres"]["url"] == shown_url
    assert settings["buffer"]["redis_url"] == "redis://:REDACTED@127.0.0.1:1/0?token=REDACTED"
    env = wf["machine_info"]["environment"]
    assert env["SLURM_JOB_COMMENT"] == "host=db port=5432 password=REDACTED dbname=prov"
    assert env["OMPI_MCA_odbc"] == "Driver=pg;UID=bob;PWD=REDACTED;"
    assert env["PROVWH_POSTGRES_URL"] == shown_url

    capsys.readouterr()
    assert main(["settings", "show"]) == 0
    assert main(["settings", "show", "--json"]) == 0
    shown = capsys.readouterr().out
    assert "sslpassword=REDACTED" in shown
    _assert_clean(shown, "provwh settings show")


def test_redact_url_forms():
    cases = {
        "postgresql://u@h/db?password=x&sslmode=require": (
            "postgresql://u@h/db?password=REDACTED&sslmode=require"
        ),
        "postgresql://u:p@h/db?sslpassword=x": "postgresql://u:REDACTED@h/db?sslpassword=REDACTED",
        "https://api/x?api_key=a&token=b&page=2#top": "https://api/x?api_key=REDACTED&token=REDACTED&page=2#top",
        "https://h/x?client_secret=s&X-Api-Key=k": "https://h/x?client_secret=REDACTED&X-Api-Key=REDACTED",
        "host=h password='a b' user=u": "host=h password=REDACTED user=u",
        "Server=s;Uid=u;Pwd=p;": "Server=s;Uid=u;Pwd=REDACTED;",
        "--token=t --db=prov": "--token=REDACTED --db=prov",
        "https://h:8080/x?a=b@c": "https://h:8080/x?a=b@c",
        "monkey=1 sort=asc keyboard=us": "monkey=1 sort=asc keyboard=us",
        "x == y": "x == y",
        "password=": "password=",
    }
    for text, expected in cases.items():
        assert redact_url(text) == expected, text
        assert redact_url(expected) == expected  # idempotent
