"""On DuckDB the server's queries run with external access disabled: no request reaches a
file (``read_csv``, ``read_json``...) through the filters, sorts, projections or fields the
API takes (they are bound values or resolved field names, never SQL), and the server's
connection itself refuses to, each time the file is opened."""

from __future__ import annotations

import duckdb
import orjson
import pytest

SECRET = "provwh-secret-7f3a"


@pytest.fixture
def secret(tmp_path):
    (tmp_path / "secret.csv").write_text(f"name,value\n{SECRET},1\n")
    (tmp_path / "secret.json").write_text(orjson.dumps([{"name": SECRET}]).decode())
    return tmp_path / "secret.csv", tmp_path / "secret.json"


def test_no_request_reads_a_local_file(database, start_server, secret):
    s = start_server(database("duckdb"))
    csv, js = secret
    reads = [f"read_csv('{csv}')", f"read_json('{js}')", f"(SELECT name FROM read_csv('{csv}'))"]
    for expr in reads:
        answers = [
            s.get(
                "/api/v1/tasks",
                params={"filter_json": orjson.dumps({expr: {"$exists": True}}).decode()},
            ),
            s.get(
                "/api/v1/tasks", params={"filter_json": orjson.dumps({"task_id": expr}).decode()}
            ),
            s.get("/api/v1/tasks", params={"sort": expr, "limit": 1}),
            s.post("/api/v1/tasks/query", json={"projection": [expr], "limit": 2}),
            s.post(
                "/api/v1/tasks/query",
                json={
                    "projection": ["status"],
                    "aggregation": [{"operator": "max", "field": expr}],
                },
            ),  # fmt: skip
            s.post("/api/v1/stats/timeseries", json={"fields": [expr], "x_field": expr}),
            s.get("/api/v1/objects", params={"sort": expr}),
        ]
        for resp in answers:
            assert resp.status_code in (200, 400), resp.text
            assert SECRET not in resp.text
    # what they answered: nothing matches a field no record has, and nothing is read
    flt = orjson.dumps({reads[0]: {"$exists": True}}).decode()
    assert s.get("/api/v1/tasks", params={"filter_json": flt}).json()["count"] == 0
    got = s.post("/api/v1/tasks/query", json={"projection": [reads[0]], "limit": 2}).json()
    assert got["items"] == [{}, {}]  # a field no record has


def test_the_servers_duckdb_connection_cannot_reach_files(tmp_path, secret):
    from serve_helpers import load_parity

    from provwh.core.config import get_settings
    from provwh.query.frag import Frag
    from provwh.serve.server import open_database

    path = str(tmp_path / "w.duckdb")
    load_parity("duckdb", path, tmp_path / "batches")
    db, _targets = open_database(get_settings(), path, None)
    csv, js = secret
    for _ in range(2):  # the file is opened again for each request: locked each time
        setting = db.backend.query(Frag("SELECT current_setting('enable_external_access')"))
        assert setting == (["current_setting('enable_external_access')"], [(False,)])
        for read in (f"read_csv('{csv}')", f"read_json('{js}')", f"read_text('{csv}')"):
            with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
                db.backend.query(Frag(f"SELECT * FROM {read}"))
        with pytest.raises(duckdb.Error):  # nor be turned back on
            db.backend.query(Frag("SET enable_external_access = true"))
        assert len(db.task_query({"workflow_id": "wf-chain"})) == 3
        db.close()
    # a DBAPI of provwh's own (a user's session) keeps DuckDB's default
    from provwh.query.api import DBAPI

    own = DBAPI.from_duckdb(path)
    assert own.backend.query(Frag(f"SELECT name FROM read_csv('{csv}')"))[1] == [(SECRET,)]
    own.close()
