"""The server under test: ``provwh serve`` started as a subprocess on a free port, over a real
DuckDB file or PostgreSQL database (never skipped), driven over HTTP; pages loaded in a real
headless Chromium."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # serve_helpers
sys.path.insert(0, str(HERE.parent / "query"))  # query_helpers: the parity fixture

from pg_support import PgDatabases  # noqa: E402
from serve_helpers import Server, load_parity  # noqa: E402

ENGINES = ("duckdb", "postgres")


@pytest.fixture
def pg_url(pg_server):
    """A fresh database at the schema head, dropped after the test."""
    dbs = PgDatabases(pg_server, "provwh_s_")
    yield dbs.create()
    dbs.drop_all()


@pytest.fixture
def database(request, tmp_path):
    """``database(engine, loaded=True)``: the serve options of a fresh database of
    ``engine`` (the parity fixture loaded, or empty)."""

    made: list[str] = []

    def make(engine: str, loaded: bool = True) -> list[str]:
        made.append(engine)
        if engine == "duckdb":
            path = str(tmp_path / f"w-{len(made)}.duckdb")
            if loaded:
                load_parity("duckdb", path, tmp_path / f"batches-{len(made)}")
            return ["--duckdb", path]
        url = request.getfixturevalue("pg_url")
        if loaded:
            load_parity("postgres", url, tmp_path / f"batches-{len(made)}")
        return ["--postgres", url]

    return make


@pytest.fixture
def start_server(tmp_path):
    """``start_server(options, *extra)``: a running ``provwh serve``; stopped after the test
    (SIGTERM), which must end it cleanly."""
    started: list[Server] = []

    def start(options: list[str], *extra: str, env: dict[str, str] | None = None) -> Server:
        server = Server([*options, *extra], tmp_path / f"server-{len(started)}", env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop_checked()


@pytest.fixture(scope="module", params=ENGINES)
def parity_server(request, tmp_path_factory, pg_server):
    """One server per engine over the parity fixture, shared by a module's read-only tests."""
    engine = request.param
    folder = tmp_path_factory.mktemp(f"serve-{engine}")
    if engine == "duckdb":
        location = str(folder / "w.duckdb")
        options = ["--duckdb", location]
    else:
        dbs = PgDatabases(pg_server, "provwh_s_")
        request.addfinalizer(dbs.drop_all)
        location = dbs.create()
        options = ["--postgres", location]
    load_parity(engine, location, folder / "batches")
    server = Server(options, folder / "server")
    server.engine = engine
    yield server
    server.stop_checked()
