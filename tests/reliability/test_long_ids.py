"""Ids longer than a btree row takes load and read back exactly, on both engines (issue 17,
item 1): a 10 KB task, workflow, activity, campaign, parent, dependency, object or agent id, a
tag, or an agent's name.

An id column holds a long id's digest key (``warehouse.escape``); the original is in the row's
``extra``, and the query API looks ids up by their digest keys and gives the originals back.
Before, PostgreSQL refused such records (an index row over 2,704 bytes) and set them aside.
"""

from __future__ import annotations

import hashlib

import orjson
import pytest
from reliability_helpers import T0, load, open_db, task, write_batches

from provwh.query.api import DBAPI
from provwh.warehouse.escape import escape_text, stored_id


def big(seed: int, size: int = 10_000) -> str:
    """``size`` characters that do not compress (PostgreSQL compresses long index rows)."""
    out, block = [], str(seed).encode()
    while sum(map(len, out)) < size:
        block = hashlib.sha256(block).hexdigest().encode()
        out.append(block.decode())
    return "".join(out)[:size]


def digest_key(text: str) -> str:
    """The documented form: ``\\u0000\\#sha256:`` and the hex sha256 of the escaped id."""
    return "\\u0000\\#sha256:" + hashlib.sha256(text.encode()).hexdigest()


LONG = big(1)
LONG_NUL = big(2)[:5000] + "\x00" + big(2)[5000:]  # long, and holding NUL
LOOKALIKE = digest_key(LONG)  # a short id whose text is LONG's digest key
FITS = "é" * 500  # 1,000 bytes: stored as it is
OVER = "é" * 500 + "a"  # 1,001 bytes: a digest key
IDS = [LONG, LONG_NUL, LOOKALIKE, FITS, OVER]
WF, CAMP, ACT, TAG = big(3), big(4), big(5), big(6)
PARENT, DEP = big(7), big(8)  # named by LONG, never loaded


def _records():
    recs = [
        {"type": "workflow", "workflow_id": WF, "campaign_id": CAMP, "name": "long",
         "started_at": T0},
        task(LONG, wf=WF, campaign_id=CAMP, activity_id=ACT, tags=[TAG, "t"],
             parent_task_id=PARENT, dependencies=[DEP], generated={"out": "/data/long.bin"}),
        task(LONG_NUL, wf=WF, parent_task_id=LONG, used={"in": "/data/long.bin"},
             started_at=T0 + 2, ended_at=T0 + 3),
        task(LOOKALIKE, wf=WF, dependencies=[LONG], started_at=T0 + 2, ended_at=T0 + 3),
        task(FITS, wf=WF, dependencies=[LONG_NUL], started_at=T0 + 4, ended_at=T0 + 5),
        task(OVER, wf=WF, dependents=[FITS], started_at=T0 + 4, ended_at=T0 + 5),
    ]  # fmt: skip
    return recs


def _ids(records, field="task_id"):
    return sorted(r[field] for r in records)


def _in_order(ids):
    """Ids in the order filters compare them: the stored text (escaped), byte by byte."""
    return sorted(ids, key=lambda t: escape_text(t).encode())


def _check(db):
    got = {r["task_id"]: r for r in db.task_query({"workflow_id": WF})}
    assert sorted(got) == sorted(IDS)  # each whole, none merged with another
    long = got[LONG]
    assert (long["workflow_id"], long["campaign_id"], long["activity_id"]) == (WF, CAMP, ACT)
    assert (long["parent_task_id"], long["dependencies"], long["tags"]) == (
        PARENT,
        [DEP],
        [TAG, "t"],
    )
    assert got[LONG_NUL]["parent_task_id"] == LONG
    for tid in IDS:
        assert _ids(db.task_query({"task_id": tid})) == [tid]
        assert _ids(db.task_query({"task_id": {"$in": [tid, "other"]}})) == [tid]
    assert _ids(db.task_query({"task_id": {"$in": [LONG, LOOKALIKE]}})) == sorted([LONG, LOOKALIKE])
    assert len(db.task_query({"task_id": {"$nin": [LONG, LOOKALIKE]}})) == 3
    assert len(db.task_query({"task_id": {"$ne": LONG}})) == 4
    for flt in (
        {"activity_id": ACT},
        {"campaign_id": CAMP},
        {"parent_task_id": PARENT},
        {"tags": TAG},
        {"dependencies": DEP},
        {"activity_id": {"$regex": "^" + ACT[:12]}},
        {"task_id": {"$regex": LONG[-12:] + "$"}},
        {"$and": [{"task_id": {"$gt": LONG[:-1]}}, {"task_id": {"$lte": LONG}}]},
    ):
        assert _ids(db.task_query(flt)) == [LONG], flt
    assert _ids(db.task_query({"parent_task_id": LONG})) == [LONG_NUL]
    ordered = [r["task_id"] for r in db.task_query({"workflow_id": WF}, sort=[("task_id", 1)])]
    assert ordered == _in_order(IDS)
    assert _ids(db.task_query({"task_id": {"$gte": LONG}})) == sorted(
        t for t in IDS if escape_text(t).encode() >= LONG.encode()
    )
    (wf,) = db.workflow_query({"workflow_id": WF})
    assert (wf["workflow_id"], wf["campaign_id"]) == (WF, CAMP)
    assert _ids(db.workflow_query({"campaign_id": CAMP}), "workflow_id") == [WF]
    (camp,) = db.derive_campaigns(CAMP)  # grouped in SQL: the whole id, not its digest key
    assert (camp["campaign_id"], camp["workflow_count"], camp["task_count"]) == (CAMP, 1, 1)
    summary = db.task_summary({"workflow_id": WF})
    assert {a["activity_id"]: a["count"] for a in summary["activity_stats"]} == {ACT: 1, "step": 4}
    groups = db.query(
        {"workflow_id": WF}, projection=["activity_id"], aggregation=[("count", "task_id")]
    )
    assert sorted((g["activity_id"], g["count_task_id"]) for g in groups) == sorted(
        [(ACT, 1), ("step", 4)]
    )
    (most,) = db.query({"workflow_id": WF}, aggregation=[("max", "activity_id")])
    assert most["max_activity_id"] == max([ACT, "step"])
    # lineage: parent, dependency and data edges join on the digest keys, ids come back whole
    up = db.get_upstream(LONG_NUL)
    assert [(r["task_id"], r["depth"]) for r in up] == sorted(
        [(LONG, 1), (DEP, 2), (PARENT, 2)], key=lambda x: (x[1], x[0])
    )
    assert up[0]["activity_id"] == ACT and up[0]["workflow_id"] == WF
    down = db.get_downstream(LONG)
    assert [(r["task_id"], r["depth"]) for r in down] == sorted(
        [(LONG_NUL, 1), (LOOKALIKE, 1), (FITS, 2)], key=lambda x: (x[1], x[0])
    )
    assert [r["task_id"] for r in db.get_upstream(FITS, max_depth=1)] == sorted([LONG_NUL, OVER])
    graph = db.lineage_graph(task_id=LONG, depth=1)
    assert sorted(n["task_id"] for n in graph["nodes"]) == sorted(
        [LONG, LONG_NUL, LOOKALIKE, DEP, PARENT]
    )
    assert sorted((e["src"], e["dst"], e["kind"]) for e in graph["edges"]) == sorted([
        (PARENT, LONG, "parent"), (DEP, LONG, "explicit"), (LONG, LOOKALIKE, "explicit"),
        (LONG, LONG_NUL, "parent"), (LONG, LONG_NUL, "dataflow"),
    ])  # fmt: skip
    whole = db.lineage_graph(workflow_id=WF)
    assert sorted(n["task_id"] for n in whole["nodes"]) == sorted(IDS)
    return got


def _check_stored(db):
    """The tables hold digest keys, none longer than 1,000 bytes, the lookalike apart."""
    tasks = dict(db.sql_rows("SELECT task_id, activity_id FROM tasks")[1])
    assert sorted(tasks) == sorted(stored_id(t) for t in IDS)
    assert stored_id(LONG) == digest_key(LONG) and stored_id(OVER) == digest_key(OVER)
    assert stored_id(LONG_NUL) == digest_key(escape_text(LONG_NUL))
    assert stored_id(FITS) == FITS and stored_id(LOOKALIKE) == LOOKALIKE.replace("\\", "\\\\")
    assert tasks[digest_key(LONG)] == digest_key(ACT)
    for table, columns in (
        ("tasks", "task_id, workflow_id, campaign_id, activity_id, parent_task_id"),
        ("workflows", "workflow_id, campaign_id"),
        ("task_values", "task_id"),
        ("task_tags", "task_id, tag"),
        ("task_edges", "src_task_id, dst_task_id"),
    ):
        for values in db.sql_rows(f"SELECT {columns} FROM {table}")[1]:
            assert all(v is None or len(v.encode()) <= 1000 for v in values), table
    edges = db.sql_rows("SELECT src_task_id, dst_task_id, kind FROM task_edges")[1]
    assert sorted(edges) == sorted([
        (digest_key(PARENT), digest_key(LONG), "parent"),
        (digest_key(DEP), digest_key(LONG), "dependency"),
        (digest_key(LONG), stored_id(LOOKALIKE), "dependency"),
        (digest_key(LONG), stored_id(LONG_NUL), "parent"),
        (digest_key(LONG), stored_id(LONG_NUL), "data"),
        (stored_id(LONG_NUL), FITS, "dependency"),
        (digest_key(OVER), FITS, "dependency"),
    ])  # fmt: skip
    assert sorted(db.sql_rows("SELECT tag FROM task_tags")[1]) == sorted(
        [(digest_key(TAG),), ("t",)]
    )


def _counts(db):
    tables = ("tasks", "workflows", "task_values", "task_tags", "task_edges")
    return {t: db.sql_rows(f"SELECT count(*) FROM {t}")[1][0][0] for t in tables}


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_long_ids_load_whole_and_read_back_exactly(kind, request, tmp_path):
    where = request.getfixturevalue("duck_path" if kind == "duckdb" else "pg_url")
    paths = write_batches(tmp_path / "spool", [_records()])
    stats = load(kind, where, paths)
    assert (stats.records, stats.tasks, stats.workflows, stats.rejects) == (6, 5, 1, 0)
    db = open_db(kind, where)
    try:
        _check(db)
        _check_stored(db)
        counts = _counts(db)
        assert counts == {
            "tasks": 5, "workflows": 1, "task_values": 2, "task_tags": 2, "task_edges": 7,
        }  # fmt: skip
        # loaded again: nothing changes
        again = load(kind, where, paths)
        assert (again.batches, again.skipped) == (0, 1)
        assert _counts(db) == counts
        # parts of each task merge into it, never into another's
        more = [{"type": "task", "task_id": tid, "status": "ERROR"} for tid in IDS]
        more.append({"type": "workflow", "workflow_id": WF, "name": "renamed"})
        merged = load(kind, where, write_batches(tmp_path / "more", [more]))
        assert (merged.tasks, merged.workflows, merged.merged, merged.rejects) == (0, 0, 6, 0)
        got = _check(db)
        assert {r["status"] for r in got.values()} == {"ERROR"}
        assert db.workflow_query({"workflow_id": WF})[0]["name"] == "renamed"
        assert _counts(db) == counts
        _check_stored(db)
        assert db.delete_workflow_data(WF) == {"workflows": 1, "tasks": 5, "objects": 0}
        assert db.task_query({}) == []
    finally:
        db.close()


def test_over_batch_files_too(tmp_path):
    db = DBAPI.from_files(write_batches(tmp_path / "spool", [_records()]))
    try:
        _check(db)
    finally:
        db.close()


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_data_objects_with_long_ids(kind, request):
    where = request.getfixturevalue("duck_path" if kind == "duckdb" else "pg_url")
    db = open_db(kind, where)
    oid, look = big(9), digest_key(big(9))  # a long object id, and its lookalike
    try:
        saved = db.insert_or_update_object(b"one", object_id=oid, task_id=LONG, workflow_id=WF)
        db.insert_or_update_object(b"two", object_id=oid, workflow_id=WF, control_version=True)
        db.insert_or_update_object(b"x", object_id=look, workflow_id=WF)
        latest = db.get_blob_object(oid)
        assert (saved, latest.object_id, latest.version, latest.data) == (oid, oid, 1, b"two")
        assert latest.task_id == LONG
        assert (db.get_blob_object(look).object_id, db.get_blob_object(look).data) == (look, b"x")
        assert [h["version"] for h in db.get_object_history(oid)] == [1, 0]
        assert db.get_blob_object(oid, version=0).data == b"one"
        assert db.get_blob_fingerprint(oid)["object_id"] == oid
        found = db.blob_object_query({"task_id": LONG})
        assert [(o["object_id"], o["workflow_id"]) for o in found] == [(oid, WF)]
        stored = db.sql_rows(
            "SELECT object_id, task_id FROM data_objects WHERE task_id IS NOT NULL"
        )[1]
        assert stored == [(digest_key(oid), digest_key(LONG))] * 2
    finally:
        db.close()


def test_openlineage_round_trip_keeps_them(tmp_path):
    """Exported whole, imported again: the same rows (``extra``'s keys in another order)."""
    from provwh.exports.importer import import_files
    from provwh.exports.openlineage import dumps, export_openlineage
    from provwh.exports.source import open_source
    from provwh.warehouse.duck import DuckTarget

    first, second = str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb")
    load("duckdb", first, write_batches(tmp_path / "spool", [_records()]))
    with open_source(duckdb_path=first) as src:
        events = list(export_openlineage(src, WF))
    assert {e["run"]["facets"]["provwh"]["task_id"] for e in events if "task_id" in
            e["run"]["facets"]["provwh"]} == set(IDS)  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text("".join(dumps(e) for e in events))
    stats = import_files([str(path)], [DuckTarget(second)])
    assert (stats.tasks, stats.workflows) == (len(IDS), 1)
    dbs = [open_db("duckdb", first), open_db("duckdb", second)]
    try:
        for table, key in (("tasks", "task_id"), ("task_values", "task_id, direction, ordinal"),
                           ("task_edges", "src_task_id, dst_task_id, kind")):  # fmt: skip
            # the load times (loaded_at) of two loads differ, and only they
            columns = "* EXCLUDE (extra, loaded_at)" if table == "tasks" else "*"
            a, b = (db.sql_rows(f"SELECT {columns} FROM {table} ORDER BY {key}")[1] for db in dbs)
            assert a == b, table
        a, b = ({k: orjson.loads(v) for k, v in db.sql_rows("SELECT task_id, extra FROM tasks")[1]}
                for db in dbs)  # fmt: skip
        assert a == b
        _check(dbs[1])
    finally:
        for db in dbs:
            db.close()


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_agents_with_long_ids_and_names(kind, request, set_env, tmp_path):
    """A 10 KB agent id and name (both indexed) through ``Flowcept.db``: saved, merged, found
    by id and by name, given back whole; a short id spelling its digest key stays apart."""
    from provwh import AgentObject, Flowcept

    if kind == "duckdb":
        set_env(PROVWH_DUCKDB_PATH=str(tmp_path / "wh.duckdb"))
    else:
        set_env(
            PROVWH_DUCKDB_ENABLED="false", PROVWH_POSTGRES_URL=request.getfixturevalue("pg_url")
        )
    agent, name, look = big(10), big(11), digest_key(big(10))
    db = Flowcept.db
    try:
        saved = db.insert_or_update_agent(
            AgentObject(agent, name, workflow_id=WF, registered_at=T0, extra_metadata={"m": 1})
        )
        assert saved.agent_id == agent
        db.insert_or_update_agent({"agent_id": agent, "extra_metadata": {"tools": 2}})
        db.insert_or_update_agent({"agent_id": look, "name": "lookalike", "registered_at": T0 + 1})
        db.insert_or_update_task(task("t-1", agent_id=agent, activity_id="plan", started_at=T0))
        want = {
            "type": "agent", "agent_id": agent, "name": name, "workflow_id": WF,
            "registered_at": T0, "extra_metadata": {"m": 1, "tools": 2},
        }  # fmt: skip
        assert db.agent_query({"agent_id": agent}) == [want]
        assert db.agent_query({"name": name}) == [want]
        assert db.agent_query({"agent_id": {"$in": [agent, "other"]}}) == [want]
        by_id = db.agent_query({}, sort=[("agent_id", 1)])
        assert [a["agent_id"] for a in by_id] == _in_order([look, agent])
        assert [a["name"] for a in db.agent_query({"name": {"$regex": name[-12:] + "$"}})] == [name]
        got = db.get_agent_object(agent)
        assert (got.agent_id, got.name, got.workflow_id) == (agent, name, WF)
        assert db.get_agent_object(look).name == "lookalike"
        (derived,) = db.derive_agents()
        assert (derived["agent_id"], derived["name"], derived["task_count"]) == (agent, name, 1)
        stored = sorted(db.sql_rows("SELECT agent_id, name FROM agents")[1])
        assert stored == sorted(
            [(digest_key(agent), digest_key(name)), (stored_id(look), "lookalike")]
        )
        assert db.delete_agents_with_filter({"agent_id": agent}) is True
        assert [a["agent_id"] for a in db.agent_query({})] == [look]
    finally:
        db.close()


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_prov_and_parquet_exports_of_a_workflow_with_a_long_id(kind, request, tmp_path):
    import io
    import json

    from provwh.exports.parquet import export_parquet
    from provwh.exports.prov import export_prov, qname
    from provwh.exports.source import open_source

    where = request.getfixturevalue("duck_path" if kind == "duckdb" else "pg_url")
    load(kind, where, write_batches(tmp_path / "spool", [_records()]))
    out = io.StringIO()
    opened = open_source(duckdb_path=where) if kind == "duckdb" else open_source(postgres_url=where)
    with opened as src:
        counts = export_prov(src, WF, out)
        archive = export_parquet(src, str(tmp_path / "archive"), workflow_id=WF)
    assert (counts.activities, counts.count("wasInformedBy")) == (len(IDS), 7)
    doc = json.loads(out.getvalue())
    named = {a["provwh:task_id"]: a["prov:label"] for a in doc["activity"].values()}
    assert named == {escape_text(t): ACT if t == LONG else "step" for t in IDS}
    assert qname("task", digest_key(LONG)) in doc["activity"]  # named by their stored ids
    assert (archive.rows["tasks"], archive.rows["workflows"], archive.rows["task_edges"]) == (
        5,
        1,
        7,
    )
