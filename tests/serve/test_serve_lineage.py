"""The OpenLineage receiver, fed by the real ``openlineage-python`` client over HTTP: events
land as tasks and workflows, once each, START and COMPLETE of a run apart end as one
finished task, data lineage links the runs; on DuckDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import gzip
import uuid

import orjson
import pytest
from conftest import ENGINES
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, parent_run
from openlineage.client.serde import Serde
from openlineage.client.transport.http import (
    ApiKeyTokenProvider,
    HttpCompression,
    HttpConfig,
    HttpTransport,
)

NS = "airflow-test"
T0 = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
DAG_RUN = str(uuid.UUID(int=1))
EXTRACT = str(uuid.UUID(int=2))
TRANSFORM = str(uuid.UUID(int=3))


def at(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def epoch(seconds: float) -> float:
    return T0.timestamp() + seconds


def client(server, token=None, compression=None) -> OpenLineageClient:
    options = {"compression": compression} if compression else {}
    if token:
        options["auth"] = ApiKeyTokenProvider({"apiKey": token})
    config = HttpConfig(
        url=server.url, endpoint="api/v1/lineage", timeout=30, retry={"total": 0}, **options
    )
    return OpenLineageClient(transport=HttpTransport(config))


def event(state, run_id, job, seconds, inputs=(), outputs=(), parent=True, facets=None):
    run_facets = dict(facets or {})
    if parent:
        run_facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=DAG_RUN), job=parent_run.Job(namespace=NS, name="etl_dag")
        )
    return RunEvent(
        eventType=state,
        eventTime=at(seconds),
        run=Run(runId=run_id, facets=run_facets),
        job=Job(namespace=NS, name=job),
        producer="https://example.org/provwh-tests",
        inputs=[InputDataset(namespace=ns, name=name) for ns, name in inputs],
        outputs=[OutputDataset(namespace=ns, name=name) for ns, name in outputs],
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_openlineage_client_events_become_tasks(engine, database, start_server):
    server = start_server(database(engine, loaded=False))
    ol = client(server)
    raw, clean, out = ("file", "/data/raw.csv"), ("s3://bucket", "clean/a.parquet"), (
        "s3://bucket", "/out/b.parquet")  # fmt: skip
    # each event its own request, as an Airflow task would send them
    ol.emit(event(RunState.START, EXTRACT, "etl_dag.extract", 1, inputs=[raw]))
    ol.emit(event(RunState.COMPLETE, EXTRACT, "etl_dag.extract", 3, outputs=[clean]))
    ol.emit(event(RunState.START, TRANSFORM, "etl_dag.transform", 4, inputs=[clean]))
    # gzip-compressed, as a client configured with compression sends it
    client(server, compression=HttpCompression.GZIP).emit(
        event(RunState.COMPLETE, TRANSFORM, "etl_dag.transform", 7.5, outputs=[out])
    )
    # the DAG run's own end, received after its tasks named it as their parent
    ol.emit(event(RunState.COMPLETE, DAG_RUN, "etl_dag", 8, parent=False))

    tasks = server.get("/api/v1/tasks/by_workflow/" + DAG_RUN).json()["items"]
    assert [(t["task_id"], t["activity_id"], t["status"]) for t in tasks] == [
        (EXTRACT, "etl_dag.extract", "FINISHED"),
        (TRANSFORM, "etl_dag.transform", "FINISHED"),
    ]
    extract, transform = tasks
    assert (extract["started_at"], extract["ended_at"]) == (epoch(1), epoch(3))
    assert (transform["started_at"], transform["ended_at"]) == (epoch(4), epoch(7.5))
    assert extract["used"] == {"input_0": "/data/raw.csv"}
    assert extract["generated"] == {"output_0": "s3://bucket/clean/a.parquet"}
    assert transform["used"] == {"input_0": "s3://bucket/clean/a.parquet"}
    assert transform["generated"] == {"output_0": "s3://bucket/out/b.parquet"}
    wf = server.get("/api/v1/workflows/" + DAG_RUN).json()
    assert (wf["name"], wf["status"], wf["ended_at"]) == ("etl_dag", "FINISHED", epoch(8))
    assert server.get("/api/v1/tasks").json()["count"] == 2  # the DAG run is no task
    # data lineage joins the runs: transform used what extract generated
    up = server.get(f"/api/v1/tasks/{TRANSFORM}/upstream").json()["items"]
    assert [(t["task_id"], t["depth"]) for t in up] == [(EXTRACT, 1)]
    down = server.get(f"/api/v1/tasks/{EXTRACT}/downstream").json()["items"]
    assert [(t["task_id"], t["depth"]) for t in down] == [(TRANSFORM, 1)]


@pytest.mark.parametrize("engine", ENGINES)
def test_each_event_lands_once_by_its_content(engine, database, start_server):
    server = start_server(database(engine, loaded=False))
    start = Serde.to_dict(event(RunState.START, EXTRACT, "job.a", 0))
    end = Serde.to_dict(event(RunState.COMPLETE, EXTRACT, "job.a", 2))
    other = Serde.to_dict(event(RunState.START, TRANSFORM, "job.b", 1))

    def post(body, **kw):
        resp = server.post("/api/v1/lineage", json=body, **kw)
        assert resp.status_code == 200, resp.text
        return resp.json()

    assert post(start) == {"received": 1, "loaded": 1, "duplicates": 0, "rejects": 0}
    assert post(start) == {"received": 1, "loaded": 0, "duplicates": 1, "rejects": 0}
    # the same content with its keys in another order and other whitespace is the same event
    reordered = orjson.dumps(dict(reversed(list(start.items())))) + b"\n"
    got = server.post(
        "/api/v1/lineage", content=reordered, headers={"content-type": "application/json"}
    ).json()
    assert got == {"received": 1, "loaded": 0, "duplicates": 1, "rejects": 0}
    # the batch forms
    assert post({"events": [start, end]}) == {
        "received": 2, "loaded": 1, "duplicates": 1, "rejects": 0}  # fmt: skip
    assert post([end, other]) == {"received": 2, "loaded": 1, "duplicates": 1, "rejects": 0}
    tasks = server.get("/api/v1/tasks").json()["items"]
    assert [(t["task_id"], t["status"], t["started_at"], t.get("ended_at")) for t in tasks] == [
        (EXTRACT, "FINISHED", epoch(0), epoch(2)),
        (TRANSFORM, "RUNNING", epoch(1), None),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_end_received_before_its_start_stays_the_end(engine, database, start_server):
    server = start_server(database(engine, loaded=False))
    ol = client(server)
    error = error_message_run.ErrorMessageRunFacet(
        message="division by zero", programmingLanguage="python", stackTrace="Traceback..."
    )
    ol.emit(event(RunState.FAIL, EXTRACT, "job.a", 5, facets={"errorMessage": error}))
    ol.emit(event(RunState.START, EXTRACT, "job.a", 1))
    task = server.get(f"/api/v1/tasks/{EXTRACT}").json()
    assert (task["status"], task["started_at"], task["ended_at"]) == ("ERROR", epoch(1), epoch(5))
    assert task["stderr"] == "division by zero\nTraceback..."
    # in one request too
    ends_first = [
        Serde.to_dict(event(RunState.COMPLETE, TRANSFORM, "job.b", 9)),
        Serde.to_dict(event(RunState.START, TRANSFORM, "job.b", 6)),
    ]
    assert server.post("/api/v1/lineage", json=ends_first).json()["loaded"] == 2
    task = server.get(f"/api/v1/tasks/{TRANSFORM}").json()
    assert (task["status"], task["started_at"], task["ended_at"]) == (
        "FINISHED", epoch(6), epoch(9))  # fmt: skip


def test_bad_lineage_requests_answer_a_detail(database, start_server):
    server = start_server(database("duckdb", loaded=False))

    def detail(content, status=400, **headers):
        resp = server.post(
            "/api/v1/lineage",
            content=content,
            headers={"content-type": "application/json", **headers},
        )
        assert resp.status_code == status, resp.text
        return resp.json()["detail"]

    good = orjson.dumps(Serde.to_dict(event(RunState.START, EXTRACT, "job.a", 0)))
    assert detail(b"{nope").startswith("the body is not JSON: ")
    assert detail(b"") == "the body is empty: send an OpenLineage run event as JSON"
    assert detail(b'{"eventType": "START"}') == "a run event needs run.runId"
    assert detail(b'{"run": {"runId": "r"}}') == (
        "a run event needs an eventType (START, RUNNING, COMPLETE, FAIL, ABORT...)"
    )
    assert detail(b'{"events": 3}') == "events must be a list of OpenLineage run events"
    assert detail(b'[{"eventType": "START", "run": {"runId": "r"}}, 7]') == (
        "event 1: an event is a JSON object, got int"
    )
    assert detail(b"7") == 'the body is one OpenLineage run event, {"events": [...]} or an array'
    assert detail(good, **{"content-encoding": "gzip"}).startswith("the body is not gzip: ")
    assert detail(good, **{"content-encoding": "br"}) == (
        "unsupported Content-Encoding 'br' (gzip or none)"
    )
    ok = server.post(
        "/api/v1/lineage",
        content=gzip.compress(good),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert ok.json() == {"received": 1, "loaded": 1, "duplicates": 0, "rejects": 0}
    assert server.get("/api/v1/tasks").json()["count"] == 1
