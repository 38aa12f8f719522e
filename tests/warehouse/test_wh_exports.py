"""Exports round trips: Parquet archives (and --delete), W3C PROV, OpenLineage, imports."""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import os
import uuid

import duckdb
import pytest
from warehouse_helpers import T0, count, query, task, workflow, write_jsonl

from provwh.exports import parquet as pq_export
from provwh.exports.importer import events_to_records, import_files
from provwh.exports.openlineage import export_openlineage, run_id
from provwh.exports.parquet import attach_sql, export_parquet
from provwh.exports.prov import export_prov
from provwh.exports.source import ExportError, open_source
from provwh.warehouse.loader import Loader

UUID_TASK = "5d7c0b0e-3f5e-4b8a-9a59-0c3b1f0e8d11"
TABLES = [t for t, _ in pq_export.TABLES]


def records() -> list[dict]:
    """wf-1 (4 tasks: a dependency, a child, an error, a UUID id), wf-2 (same campaign),
    wf-old (another campaign, a year earlier)."""
    old = T0 - 365 * 86400
    return [
        workflow("wf-1", hostname="node-1"),
        task(0, tags=["a", "b"]),
        task(1, dependencies=[task(0)["task_id"]]),
        task(2, parent_task_id=task(0)["task_id"], status="ERROR"),
        task(3, task_id=UUID_TASK),
        workflow("wf-2"),
        task(10, wf="wf-2"),
        task(11, wf="wf-2"),
        workflow("wf-old", campaign_id="camp-0", started_at=old),
        task(20, wf="wf-old", campaign_id="camp-0", started_at=old, ended_at=old + 1),
    ]


def load(target, tmp_path) -> None:
    loader = Loader([target])
    try:
        loader.load_files([write_jsonl(tmp_path / "in.jsonl", records())])
        loader.derive_lineage()
    finally:
        loader.close()


def open_loc(kind: str, location: str):
    return open_source(duckdb_path=location) if kind == "duckdb" else open_source(None, location)


@pytest.fixture
def loaded(engine, tmp_path):
    kind, location, target = engine
    load(target, tmp_path)
    target.close()
    return kind, location


def wf_rows(location: str, workflow_id: str) -> dict[str, list[tuple]]:
    """Key columns of the source rows of one workflow, per table."""
    tasks = "(SELECT task_id FROM tasks WHERE workflow_id = %s)"
    sql = {
        "workflows": ("SELECT workflow_id FROM workflows WHERE workflow_id = %s", 1),
        "tasks": ("SELECT task_id FROM tasks WHERE workflow_id = %s", 1),
        "task_values": (
            f"SELECT task_id, direction, ordinal FROM task_values WHERE task_id IN {tasks}",
            1,
        ),
        "task_telemetry": (
            f"SELECT task_id, phase FROM task_telemetry WHERE task_id IN {tasks}",
            1,
        ),
        "task_tags": (f"SELECT task_id, tag FROM task_tags WHERE task_id IN {tasks}", 1),
        "task_edges": (
            f"SELECT src_task_id, dst_task_id, kind FROM task_edges WHERE src_task_id IN {tasks}"
            f" OR dst_task_id IN {tasks}",
            2,
        ),
        "data_objects": (
            f"SELECT object_id, version FROM data_objects WHERE task_id IN {tasks}",
            1,
        ),
    }
    return {t: sorted(query(location, s, [workflow_id] * n)) for t, (s, n) in sql.items()}


def archive_rows(out: str, workflow_id: str | None = None) -> dict[str, list[tuple]]:
    keys = {
        "workflows": "workflow_id",
        "tasks": "task_id",
        "task_values": "task_id, direction, ordinal",
        "task_telemetry": "task_id, phase",
        "task_tags": "task_id, tag",
        "task_edges": "src_task_id, dst_task_id, kind",
        "data_objects": "object_id, version",
    }
    with duckdb.connect() as conn:
        for sql in attach_sql(out):
            conn.execute(sql)
        views = {r[0] for r in conn.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        where = "" if workflow_id is None else " WHERE workflow_id = ?"
        params = [] if workflow_id is None else [workflow_id]
        return {
            t: sorted(conn.execute(f"SELECT {k} FROM {t}{where}", params).fetchall())
            if t in views
            else []
            for t, k in keys.items()
        }


# --- Parquet -------------------------------------------------------------------------------------


def test_parquet_round_trip_has_the_source_rows(loaded, tmp_path):
    kind, location = loaded
    out = str(tmp_path / "archive")
    with open_loc(kind, location) as src:
        result = export_parquet(src, out, workflow_id="wf-1")
    expected = wf_rows(location, "wf-1")
    assert result.rows == {t: len(rows) for t, rows in expected.items()}
    assert len(expected["tasks"]) == 4 and expected["task_edges"] and expected["task_tags"]
    assert archive_rows(out) == expected
    # the partition column and the types read back as stored
    with duckdb.connect() as conn:
        for sql in attach_sql(out):
            conn.execute(sql)
        assert conn.execute("SELECT DISTINCT workflow_id FROM task_values").fetchall() == [
            ("wf-1",)
        ]
        types = dict(
            conn.execute("SELECT column_name, column_type FROM (DESCRIBE tasks)").fetchall()
        )
        assert types["started_at"] == "TIMESTAMP" and types["task_id"] == "VARCHAR"
        started = conn.execute("SELECT min(started_at) FROM tasks").fetchone()[0]
    assert started == query(location, "SELECT min(started_at) FROM tasks WHERE workflow_id = %s",
                            ["wf-1"])[0][0]  # fmt: skip


def test_parquet_campaign_and_before(tmp_path, duck_path):
    from provwh.warehouse.duck import DuckTarget

    load(DuckTarget(duck_path), tmp_path)
    with open_source(duck_path) as src:
        camp = export_parquet(src, str(tmp_path / "camp"), campaign_id="camp-1")
        old = export_parquet(src, str(tmp_path / "old"), before="2023-01-01")
        with pytest.raises(ExportError, match="nothing found for workflow nope"):
            export_parquet(src, str(tmp_path / "x"), workflow_id="nope")
        with pytest.raises(ExportError, match="expected a date"):
            export_parquet(src, str(tmp_path / "x"), before="yesterday")
    assert (camp.rows["tasks"], camp.rows["workflows"]) == (6, 2)
    assert sorted(os.listdir(tmp_path / "camp" / "tasks")) == [
        "workflow_id=wf-1",
        "workflow_id=wf-2",
    ]
    assert (old.rows["tasks"], old.rows["workflows"]) == (1, 1)
    assert archive_rows(str(tmp_path / "old"))["workflows"] == [("wf-old",)]


def test_parquet_existing_partitions(tmp_path, duck_path):
    from provwh.warehouse.duck import DuckTarget

    load(DuckTarget(duck_path), tmp_path)
    out = str(tmp_path / "a")
    with open_source(duck_path) as src:
        export_parquet(src, out, workflow_id="wf-2")
        with pytest.raises(ExportError, match="exists: pass --overwrite"):
            export_parquet(src, out, workflow_id="wf-2")
        assert len(archive_rows(out)["tasks"]) == 2  # a refused export leaves nothing behind
        export_parquet(src, out, workflow_id="wf-2", existing="overwrite")
        assert len(archive_rows(out)["tasks"]) == 2
        export_parquet(src, out, workflow_id="wf-2", existing="append")
        assert len(archive_rows(out)["tasks"]) == 4
        with pytest.raises(ExportError, match="PostgreSQL only"):
            export_parquet(src, out, workflow_id="wf-2", delete=True)
    assert not [d for d in os.listdir(out) if d.startswith(".staging")]


def _pg_counts(url: str) -> dict[str, int]:
    return {t: count(url, t) for t in TABLES}


def test_parquet_delete_removes_exactly_the_archived_rows(pg_url, tmp_path):
    from provwh.warehouse.pg import PgTarget

    load(PgTarget(pg_url), tmp_path)
    before = _pg_counts(pg_url)
    expected = wf_rows(pg_url, "wf-1")
    others = wf_rows(pg_url, "wf-2")
    out = str(tmp_path / "archive")
    with open_source(None, pg_url) as src:
        result = export_parquet(src, out, workflow_id="wf-1", delete=True)
    assert result.deleted == {t: len(rows) for t, rows in expected.items()}
    after = _pg_counts(pg_url)
    assert after == {t: before[t] - len(expected[t]) for t in TABLES}
    assert wf_rows(pg_url, "wf-1")["tasks"] == [] and wf_rows(pg_url, "wf-2") == others
    assert archive_rows(out) == expected


def test_parquet_delete_refused_when_rows_changed(pg_url, tmp_path, monkeypatch):
    from provwh.warehouse.pg import PgTarget

    load(PgTarget(pg_url), tmp_path)
    publish = pq_export._publish

    def publish_then_change(*args):  # a loader adds a tag between the export and the delete
        files = publish(*args)
        query(pg_url, "INSERT INTO task_tags VALUES (%s, 'late') RETURNING 1", [task(1)["task_id"]])
        return files

    monkeypatch.setattr(pq_export, "_publish", publish_then_change)
    before = _pg_counts(pg_url)
    out = str(tmp_path / "archive")
    with open_source(None, pg_url) as src, pytest.raises(ExportError, match="nothing deleted"):
        export_parquet(src, out, workflow_id="wf-1", delete=True)
    assert _pg_counts(pg_url) == {**before, "task_tags": before["task_tags"] + 1}
    assert len(archive_rows(out)["tasks"]) == 4  # the files stay


# --- W3C PROV ------------------------------------------------------------------------------------


def test_prov_json_reads_back_with_the_prov_package(loaded):
    prov_model = pytest.importorskip("prov.model")
    kind, location = loaded
    out = io.StringIO()
    with open_loc(kind, location) as src:
        export_prov(src, "wf-1", out, "json")
        with pytest.raises(ExportError, match="no workflow 'nope'"):
            export_prov(src, "nope", io.StringIO())
    text = out.getvalue()
    parsed = prov_model.ProvDocument.deserialize(content=text, format="json")
    kinds = collections.Counter(type(r).__name__ for r in parsed.get_records())
    tasks = "(SELECT task_id FROM tasks WHERE workflow_id = %s)"
    sql = f"SELECT direction, value_hash FROM task_values WHERE task_id IN {tasks}"
    values = query(location, sql,
                   ["wf-1"])  # fmt: skip
    edges = wf_rows(location, "wf-1")["task_edges"]
    assert kinds["ProvActivity"] == 4
    assert kinds["ProvEntity"] == len({h for _, h in values}) < len(values)  # declared once
    assert kinds["ProvUsage"] == sum(d == "used" for d, _ in values)
    assert kinds["ProvGeneration"] == sum(d == "generated" for d, _ in values)
    assert kinds["ProvCommunication"] == len(edges) >= 2  # dependency + parent
    assert kinds["ProvAgent"] == 2  # alice (from the workflow) and node-1
    used = next(iter(parsed.get_records(prov_model.ProvUsage)))
    roles = {
        str(r.get_attribute("prov:role").pop()) for r in parsed.get_records(prov_model.ProvUsage)
    }
    assert {"x", "lr", "path", "opts.epochs"} <= roles and used is not None
    # the UUID task id survives as an attribute of its activity
    ids = {
        str(next(iter(a.get_attribute("provwh:task_id"))))
        for a in parsed.get_records(prov_model.ProvActivity)
    }
    assert UUID_TASK in ids


def test_prov_n(loaded):
    kind, location = loaded
    out = io.StringIO()
    with open_loc(kind, location) as src:
        doc = export_prov(src, "wf-1", out, "provn")
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0] == "document" and lines[-1] == "endDocument"
    assert sum(x.lstrip().startswith("activity(") for x in lines) == 4
    assert sum(x.lstrip().startswith("wasInformedBy(") for x in lines) == doc.count("wasInformedBy")
    assert 'prov:role="opts.epochs"' in text and "%% xsd:double" in text


def test_prov_local_names_are_escaped():
    from provwh.exports.prov import qname

    assert qname("task", "a b/c.") == "task:a%20b%2Fc%2E"
    assert qname("task", "-x") == "task:%2Dx"


# --- OpenLineage ---------------------------------------------------------------------------------


def test_openlineage_events(loaded):
    kind, location = loaded
    with open_loc(kind, location) as src:
        events = list(export_openlineage(src, "wf-1"))
        with pytest.raises(ExportError, match="no workflow 'nope'"):
            list(export_openlineage(src, "nope"))
    # the workflow's own START (it has not ended), then START and an end event per task
    assert len(events) == 1 + 2 * 4
    wf_start, events = events[0], events[1:]
    assert (wf_start["eventType"], wf_start["run"]["runId"]) == ("START", run_id("wf-1"))
    assert wf_start["job"] == {"namespace": "provwh", "name": "demo"}
    assert wf_start["run"]["facets"]["provwh"]["workflow"]["hostname"] == "node-1"
    by_task = collections.defaultdict(list)
    for ev in events:
        json.dumps(ev)  # plain JSON
        by_task[ev["run"]["facets"]["provwh"]["task_id"]].append(ev["eventType"])
        assert str(uuid.UUID(ev["run"]["runId"])) == ev["run"]["runId"]
        parent = ev["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == run_id("wf-1") and parent["job"]["name"] == "demo"
    assert by_task[task(2)["task_id"]] == ["START", "FAIL"]
    assert by_task[task(0)["task_id"]] == ["START", "COMPLETE"]
    first = events[0]
    assert first["job"] == {"namespace": "provwh", "name": "train"}
    assert first["inputs"] == [{"namespace": "file", "name": "/data/in_0.csv"}]
    assert events[1]["outputs"] == [{"namespace": "file", "name": "/data/out_0.bin"}]
    uuid_runs = {e["run"]["runId"] for e in events if e["run"]["facets"]["provwh"]["task_id"]
                 == UUID_TASK}  # fmt: skip
    assert uuid_runs == {UUID_TASK}
    assert run_id("wf-1") == str(uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, "urn:provwh"), "wf-1"))


def _table(location: str, table: str, key: str) -> list[dict]:
    """Every column of a table, JSON as parsed values, in key order: what a round trip keeps
    (``loaded_at`` aside: a load's own time, not the record's)."""
    with open_source(duckdb_path=location) as src:
        rows = src.dicts(f"SELECT * FROM {table} ORDER BY {key}")
    return [{k: json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v
             for k, v in r.items() if k != "loaded_at"} for r in rows]  # fmt: skip


def test_an_openlineage_round_trip_keeps_every_field(tmp_path):
    """Export, import into a fresh file: every column of the workflow and its tasks (stderr,
    tags, custom metadata, telemetry, login and node names, the workflow's status and times)
    and the child rows come back as they were (issue 19 item 9)."""
    from provwh.exports.openlineage import dumps
    from provwh.warehouse.duck import DuckTarget

    first, second = str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb")
    rich = [
        workflow("wf-r", status="FINISHED", ended_at=T0 + 60, custom_metadata={"k": [1, 2]},
                 sys_name="Linux", parent_workflow_id="wf-up"),
        task(0, wf="wf-r", stderr="warn: x", stdout="out", tags=["gpu", "fast"],
             custom_metadata={"owner": "bob"}, login_name="bob", node_name="n7",
             subtype="train_step", group_id="g1", dependencies=[task(1)["task_id"]]),
        task(1, wf="wf-r", status="ERROR", stderr="ValueError: boom", submitted_at=T0),
        task(2, wf="wf-r", status="RUNNING", ended_at=None, unknown_field={"kept": True}),
    ]  # fmt: skip
    loader = Loader([DuckTarget(first)])
    loader.load_files([write_jsonl(tmp_path / "in.jsonl", rich)])
    loader.derive_lineage()
    loader.close()
    with open_source(duckdb_path=first) as src:
        events = list(export_openlineage(src, "wf-r"))
    assert [e["eventType"] for e in (events[0], events[-1])] == ["START", "COMPLETE"]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(dumps(e) for e in events))
    stats = import_files([str(path)], [DuckTarget(second)])
    assert (stats.tasks, stats.workflows) == (3, 1)
    for table, key in (("workflows", "workflow_id"), ("tasks", "task_id"),
                       ("task_values", "task_id, direction, ordinal"),
                       ("task_telemetry", "task_id, phase"), ("task_tags", "task_id, tag"),
                       ("task_edges", "src_task_id, dst_task_id, kind")):  # fmt: skip
        assert _table(second, table, key) == _table(first, table, key), table
    extras = [t["extra"] for t in _table(second, "tasks", "task_id")]
    assert extras == [None, None, {"unknown_field": {"kept": True}}]


def test_import_of_an_openlineage_export_loads_the_tasks(tmp_path, duck_path, pg_url):
    from provwh.exports.openlineage import dumps
    from provwh.warehouse.duck import DuckTarget
    from provwh.warehouse.pg import PgTarget

    load(DuckTarget(duck_path), tmp_path)
    with open_source(duck_path) as src:
        events = list(export_openlineage(src, "wf-1"))
    path = tmp_path / "events.jsonl"
    path.write_text("".join(dumps(e) for e in events))
    stats = import_files([str(path)], [PgTarget(pg_url)])
    assert (stats.tasks, stats.workflows) == (4, 1)
    cols = "task_id, workflow_id, activity_id, status, started_at, ended_at, used::text"
    sql = f"SELECT {cols} FROM tasks WHERE workflow_id = 'wf-1' ORDER BY task_id"
    src_rows = query(duck_path, sql.replace("used::text", "CAST(used AS VARCHAR)"))
    got = query(pg_url, sql)
    assert [r[:6] for r in got] == [r[:6] for r in src_rows]
    assert [json.loads(r[6]) for r in got] == [json.loads(r[6]) for r in src_rows]
    assert import_files([str(path)], [PgTarget(pg_url)]).tasks == 0  # the ledger knows it


def test_import_of_foreign_openlineage_events(tmp_path, duck_path):
    from provwh.warehouse.duck import DuckTarget

    run, parent = str(uuid.uuid4()), str(uuid.uuid4())
    base = {
        "run": {
            "runId": run,
            "facets": {
                "parent": {"run": {"runId": parent}, "job": {"namespace": "n", "name": "etl"}}
            },
        },
        "job": {"namespace": "n", "name": "extract"},
        "inputs": [{"namespace": "s3://bucket", "name": "/raw/a.csv"},
                   {"namespace": "s3://bucket/", "name": "raw/b.csv"},
                   {"namespace": "postgres://db:5432", "name": "public.orders"}],
        "outputs": [],
    }  # fmt: skip
    failed = {"errorMessage": {"message": "boom", "programmingLanguage": "python",
                               "stackTrace": "Traceback: ..."}}  # fmt: skip
    events = [
        {**base, "eventType": "START", "eventTime": "2024-05-01T10:00:00Z"},
        {**base, "eventType": "FAIL", "eventTime": "2024-05-01T10:00:05.5Z",
         "run": {"runId": run, "facets": {**base["run"]["facets"], **failed}},
         "outputs": [{"namespace": "file", "name": "/tmp/out.parquet"}]},
    ]  # fmt: skip
    recs = events_to_records(events)
    assert recs[0] == {"type": "workflow", "workflow_id": parent, "name": "etl"}
    assert recs[1]["used"] == {"input_0": "s3://bucket/raw/a.csv", "input_1": "s3://bucket/raw/b.csv",
                               "input_2": "postgres://db:5432/public.orders"}  # fmt: skip
    assert recs[1]["generated"] == {"output_0": "/tmp/out.parquet"}
    assert recs[1]["stderr"] == "boom\nTraceback: ..."
    path = tmp_path / "ol.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    import_files([str(path)], [DuckTarget(duck_path)])
    sql = "SELECT task_id, workflow_id, activity_id, status, ended_at - started_at FROM tasks"
    assert query(duck_path, sql) == [(run, parent, "extract", "ERROR", dt.timedelta(seconds=5.5))]


def test_import_of_a_flowcept_buffer_file(tmp_path, duck_path):
    from provwh.warehouse.duck import DuckTarget

    path = write_jsonl(tmp_path / "flowcept_buffer.jsonl", records())
    stats = import_files([path], [DuckTarget(duck_path)])
    assert (stats.tasks, stats.workflows) == (7, 3)
    with pytest.raises(ExportError, match="no such file"):
        import_files([str(tmp_path / "missing.jsonl")], [DuckTarget(duck_path)])


def test_a_failed_task_exports_its_error_and_imports_it_back():
    from provwh.exports.openlineage import task_events

    row = {"task_id": "t-err", "workflow_id": "wf-e", "activity_id": "fit", "status": "ERROR",
           "stderr": "ValueError: diverged", "started_at": T0, "ended_at": T0 + 2}  # fmt: skip
    start, fail = task_events(row, {"name": "exp"})
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert "errorMessage" not in start["run"]["facets"]
    error = fail["run"]["facets"]["errorMessage"]
    assert (error["message"], error["programmingLanguage"]) == ("ValueError: diverged", "python")
    assert fail["run"]["runId"] == start["run"]["runId"] == run_id("t-err")
    (wf, rec) = events_to_records([start, fail])
    assert (rec["task_id"], rec["status"], rec["stderr"]) == ("t-err", "ERROR",
                                                              "ValueError: diverged")  # fmt: skip
    assert wf == {"type": "workflow", "workflow_id": "wf-e", "name": "exp"}


def test_a_run_imported_in_two_files_counts_once(tmp_path, duck_path):
    """START and COMPLETE in separate files: one task and one workflow, the second part merged
    (the summary used to say 2 tasks, 2 workflows)."""
    from provwh.warehouse.duck import DuckTarget

    run, parent = str(uuid.uuid4()), str(uuid.uuid4())
    base = {"run": {"runId": run, "facets": {"parent": {"run": {"runId": parent},
                                                        "job": {"namespace": "n", "name": "etl"}}}},
            "job": {"namespace": "n", "name": "extract"}, "inputs": [], "outputs": []}  # fmt: skip
    for name, kind, at in (("a", "START", "10:00:00"), ("b", "COMPLETE", "10:00:03")):
        event = {**base, "eventType": kind, "eventTime": f"2024-05-01T{at}Z"}
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(event) + "\n")
    stats = import_files([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")],
                         [DuckTarget(duck_path)], group_records=1)  # fmt: skip
    assert (stats.batches, stats.tasks, stats.workflows, stats.merged) == (2, 1, 1, 2)
    assert stats.summary().split(" in ")[0] == (
        "loaded 2 batches: 4 rows (1 task, 1 workflow; 2 records merged into stored ones), "
        "0 rejects"
    )
    assert query(duck_path, "SELECT status, ended_at - started_at FROM tasks") == [
        ("FINISHED", dt.timedelta(seconds=3))
    ]
