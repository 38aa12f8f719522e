"""``provwh serve`` as a command: writes with and without the token, the receiver's token,
stopping on SIGINT / SIGTERM, a DuckDB file left free for a loader, and its errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import uuid

import pytest
from conftest import ENGINES
from query_helpers import write_batches

TOKEN, LINEAGE_TOKEN = "s3cret-token", "l1neage-token"


def detail(resp, status):
    assert resp.status_code == status, resp.text
    return resp.json()["detail"]


def ol_event(run_id: str, job: str) -> dict:
    return {
        "eventType": "START",
        "eventTime": "2024-03-01T12:00:00Z",
        "run": {"runId": run_id},
        "job": {"namespace": "tests", "name": job},
        "producer": "https://example.org/provwh-tests",
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_writes_need_the_token(engine, database, start_server):
    server = start_server(database(engine), "--token", TOKEN, "--lineage-token", LINEAGE_TOKEN)
    info = server.get("/api/v1/info").json()
    assert (info["writes"], info["lineage_receiver"]) == ("token", "token")
    delete = server.client.delete
    resp = delete("/api/v1/workflows/wf-chain")
    assert detail(resp, 401) == "a write needs the server's token: Authorization: Bearer <token>"
    assert resp.headers["www-authenticate"] == "Bearer"
    assert detail(delete("/api/v1/workflows/wf-chain", headers={"Authorization": "Basic x"}),
                  401).startswith("a write needs")  # fmt: skip
    wrong = {"Authorization": "Bearer " + LINEAGE_TOKEN}  # the receiver's token writes nothing
    assert detail(delete("/api/v1/workflows/wf-chain", headers=wrong), 403) == "wrong token"
    assert server.get("/api/v1/workflows/wf-chain").status_code == 200
    auth = {"Authorization": "Bearer " + TOKEN}
    resp = delete("/api/v1/workflows/wf-chain", headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["deleted"]["tasks"] == 3
    assert detail(server.get("/api/v1/workflows/wf-chain"), 404) == "Workflow not found: wf-chain"
    assert server.get("/api/v1/tasks/by_workflow/wf-chain").json()["count"] == 0
    assert detail(delete("/api/v1/workflows/wf-chain", headers=auth), 404) == (
        "Workflow not found: wf-chain"
    )
    resp = delete("/api/v1/campaigns/camp-B", headers=auth)
    assert resp.status_code == 200 and resp.json()["deleted"]["tasks"] == 10
    remaining = server.get("/api/v1/tasks").json()["items"]
    assert [t["task_id"] for t in remaining] == ["d1", "d1c", "d2", "d3", "d4"]
    # the receiver takes its own token, or the server's
    post = server.post
    body = ol_event(str(uuid.UUID(int=7)), "job.x")
    assert detail(post("/api/v1/lineage", json=body), 401) == (
        "the lineage receiver needs its token: Authorization: Bearer"
    )
    bad = {"Authorization": "Bearer nope"}
    assert detail(post("/api/v1/lineage", json=body, headers=bad), 403) == "wrong token"
    ok = post("/api/v1/lineage", json=body, headers={"Authorization": f"Bearer {LINEAGE_TOKEN}"})
    assert ok.json()["loaded"] == 1
    body2 = ol_event(str(uuid.UUID(int=8)), "job.y")
    assert post("/api/v1/lineage", json=body2, headers=auth).json()["loaded"] == 1
    assert server.get("/api/v1/tasks").json()["count"] == 7


def test_the_token_from_the_environment(database, start_server):
    server = start_server(database("duckdb"), env={"PROVWH_SERVE_TOKEN": TOKEN})
    assert server.get("/api/v1/info").json()["writes"] == "token"
    auth = {"Authorization": "Bearer " + TOKEN}
    assert server.client.delete("/api/v1/workflows/wf-misc", headers=auth).status_code == 200
    assert server.get("/api/v1/tasks").json()["count"] == 8


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stops_cleanly_on_a_signal(sig, database, start_server):
    options = database("duckdb")
    server = start_server(options)
    assert server.get("/api/v1/tasks").json()["count"] == 18
    assert server.stop(sig) == 0
    assert server.out_path.read_text() == (
        f"provwh serve: http://127.0.0.1:{server.port}/ (DuckDB {options[1]}; read-only;"
        " API /api/v1, OpenAPI /openapi.json; Ctrl-C stops)\n"
        "provwh serve: stopped\n"
    )
    assert server.err_path.read_text() == ""


def test_a_loader_writes_the_duckdb_file_while_it_serves(database, start_server, tmp_path):
    options = database("duckdb")
    server = start_server(options)
    assert server.get("/api/v1/workflows").json()["count"] == 3
    batch = [
        {"type": "workflow", "workflow_id": "wf-new", "name": "late", "started_at": 1.7e9},
        {"type": "task", "task_id": "z1", "workflow_id": "wf-new", "activity_id": "late_one",
         "status": "FINISHED", "started_at": 1.7e9, "ended_at": 1.7e9 + 1},
    ]  # fmt: skip
    paths = write_batches(tmp_path / "late", [batch])
    done = subprocess.run(
        [sys.executable, "-m", "provwh.cli", "load", *paths, *options, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert server.get("/api/v1/workflows/wf-new").json()["name"] == "late"
    assert [
        t["task_id"] for t in server.get("/api/v1/tasks/by_workflow/wf-new").json()["items"]
    ] == ["z1"]


def _serve(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "provwh.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_command_errors(tmp_path, monkeypatch):
    done = _serve("--duckdb", "a.duckdb", "--postgres", "postgresql://x/y")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.endswith(
        "provwh serve: error: argument --postgres: not allowed with argument --duckdb\n"
    )
    monkeypatch.setenv("PROVWH_DUCKDB_ENABLED", "false")
    done = _serve()
    assert (done.returncode, done.stderr) == (
        1,
        "provwh: error: no database enabled: pass --duckdb PATH or --postgres URL\n",
    )
    monkeypatch.delenv("PROVWH_DUCKDB_ENABLED")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve("--duckdb", str(tmp_path / "w.duckdb"), "--port", str(port))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"provwh: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )
    done = _serve("--help")
    assert done.returncode == 0
    for option in ("--duckdb", "--postgres", "--host", "--port", "--token", "--lineage-token"):
        assert option in done.stdout
