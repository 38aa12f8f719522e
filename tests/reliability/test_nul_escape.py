"""Strings PostgreSQL cannot hold (NUL) are escaped reversibly and without collisions (issue 17,
item 5): ids, keys and values come back exactly as captured, on both engines.

Before, ``"coll\\x00id"`` and the text ``"coll\\\\u0000id"`` were stored alike (4 records
loaded as 3 tasks), keys ``"k\\x00"`` and ``"k\\\\u0000"`` merged, and a user's own dict
``{"$nul": ...}`` came back as a plain string.
"""

from __future__ import annotations

import pytest
from reliability_helpers import load, open_db, task, write_batches

from provwh.query.api import DBAPI

BS = "\\"
IDS = [
    "coll\x00id",
    f"coll{BS}u0000id",  # the text a NUL was escaped to
    f"coll{BS}{BS}u0000id",
    f"coll{BS}{BS}{BS}u0000id\x00",
    "plain",
]
USED = {
    "k\x00": 1,
    f"k{BS}u0000": 2,
    f"k{BS}{BS}u0000": 3,
    "s_nul": "v\x00",
    "s_text": f"v{BS}u0000",
    "s_back": f"C:{BS}data{BS}u0000x",
    "only_bs": BS,
    "dict": {"$nul": "abc"},  # a user's dict shaped like the marker
    "wrapped": {"$nul": ["abc"]},
    "nested": {"$nul": {"$nul": "x\x00"}},
    "empty_marker": {"$nul": ""},
    "deep": {"k\x00": {"$nul": f"y{BS}u0000"}, "list": ["\x00", f"{BS}u0000", {"$nul": "z"}]},
}


def _records():
    recs = [{"type": "workflow", "workflow_id": "wf-nul\x00", "name": f"n{BS}u0000"}]
    for i, tid in enumerate(IDS):
        recs.append(
            task(
                tid,
                wf="wf-nul\x00",
                activity_id=f"act{BS}u0000" if i % 2 else "act\x00",
                used={**USED, "i": i},
                generated={"out": tid},
                custom_metadata=USED,
                dependencies=[IDS[i - 1]] if i else [],
                tags=[tid, "t"],
            )
        )
    return recs


def _by_id(records):
    return {r["task_id"]: r for r in records}


def _check(db):
    got = _by_id(db.task_query({"workflow_id": "wf-nul\x00"}))
    assert sorted(got) == sorted(IDS)  # five records, five tasks
    for i, tid in enumerate(IDS):
        rec = got[tid]
        assert rec["used"] == {**USED, "i": i}
        assert rec["generated"] == {"out": tid}
        assert rec["custom_metadata"] == USED
        assert rec["activity_id"] == (f"act{BS}u0000" if i % 2 else "act\x00")
        assert sorted(rec["tags"]) == sorted([tid, "t"])
        assert [r["task_id"] for r in db.task_query({"task_id": tid})] == [tid]
        assert [r["task_id"] for r in db.task_query({"generated.out": tid})] == [tid]
        assert [r["task_id"] for r in db.task_query({"used.i": i, "tags": tid})] == [tid]
    (wf,) = db.workflow_query({"workflow_id": "wf-nul\x00"})
    assert wf["name"] == f"n{BS}u0000"
    n = len(IDS)

    def count(flt):
        return len(db.task_query(flt, projection=["task_id"]))

    for key, value in USED.items():
        assert count({f"used.{key}": {"$eq": value}}) == n, key  # $eq: a dict is no operator
        assert count({f"custom_metadata.{key}": {"$eq": value}}) == n, key
        assert count({f"used.{key}": {"$in": [value, 0]}}) == n, key
    assert count({"used.k\x00": 2}) == 0 and count({f"used.k{BS}u0000": 1}) == 0
    assert count({"used.s_nul": f"v{BS}u0000"}) == 0
    assert count({"used.dict": "abc"}) == 0 and count({"custom_metadata.dict": "abc"}) == 0
    assert count({"used.dict.$nul": "abc"}) == n
    assert count({"task_id": {"$in": IDS[:2]}}) == 2
    projected = db.task_query({"task_id": IDS[1]}, projection=["used.k\x00", f"used.k{BS}u0000"])
    assert projected == [{"used": {"k\x00": 1, f"k{BS}u0000": 2}}]
    summary = db.task_summary({"workflow_id": "wf-nul\x00"})
    acts = {a["activity_id"]: a["count"] for a in summary["activity_stats"]}
    assert acts == {"act\x00": 3, f"act{BS}u0000": 2}
    up = db.get_upstream(IDS[2])
    assert [(r["task_id"], r["depth"]) for r in up] == [(IDS[1], 1), (IDS[0], 2)]
    graph = db.lineage_graph(task_id=IDS[1], depth=1)
    assert sorted(nd["task_id"] for nd in graph["nodes"]) == sorted(IDS[:3])
    assert {(e["src"], e["dst"]) for e in graph["edges"]} == {(IDS[0], IDS[1]), (IDS[1], IDS[2])}
    return got


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_nul_and_its_escape_do_not_collide(kind, request, tmp_path):
    where = request.getfixturevalue("duck_path" if kind == "duckdb" else "pg_url")
    paths = write_batches(tmp_path / "spool", [_records()])
    stats = load(kind, where, paths)
    assert (stats.records, stats.tasks, stats.rejects) == (len(IDS) + 1, len(IDS), 0)
    db = open_db(kind, where)
    try:
        _check(db)
        # a second load merges each part into its own task, never into another's
        more = [{"type": "task", "task_id": tid, "status": "ERROR"} for tid in IDS]
        load(kind, where, write_batches(tmp_path / "more", [more]))
        got = _check(db)
        assert {r["status"] for r in got.values()} == {"ERROR"}
    finally:
        db.close()


def test_over_batch_files_too(tmp_path):
    db = DBAPI.from_files(write_batches(tmp_path / "spool", [_records()]))
    try:
        _check(db)
    finally:
        db.close()


def test_openlineage_round_trip_keeps_them(tmp_path):
    """Exported as captured (escapes undone), imported escaped again: the same rows."""
    from provwh.exports.importer import import_files
    from provwh.exports.openlineage import dumps, export_openlineage
    from provwh.exports.source import open_source
    from provwh.warehouse.duck import DuckTarget

    first, second = str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb")
    load("duckdb", first, write_batches(tmp_path / "spool", [_records()]))
    with open_source(duckdb_path=first) as src:
        events = list(export_openlineage(src, "wf-nul\x00"))
    path = tmp_path / "events.jsonl"
    path.write_text("".join(dumps(e) for e in events))
    stats = import_files([str(path)], [DuckTarget(second)])
    assert (stats.tasks, stats.workflows) == (len(IDS), 1)
    dbs = [open_db("duckdb", first), open_db("duckdb", second)]
    try:
        for table, key in (("tasks", "task_id"), ("task_values", "task_id, direction, ordinal"),
                           ("task_edges", "src_task_id, dst_task_id")):  # fmt: skip
            # the load times (loaded_at) of two loads differ, and only they
            columns = "* EXCLUDE (loaded_at)" if table == "tasks" else "*"
            a, b = (db.sql_rows(f"SELECT {columns} FROM {table} ORDER BY {key}")[1] for db in dbs)
            assert a == b, table
        _check(dbs[1])
    finally:
        for db in dbs:
            db.close()


def test_prov_and_parquet_exports_find_a_workflow_whose_id_holds_nul(tmp_path):
    """The exports look the workflow up as stored (escaped), like the OpenLineage export."""
    import io

    from provwh.exports.parquet import export_parquet
    from provwh.exports.prov import export_prov
    from provwh.exports.source import open_source

    db = str(tmp_path / "a.duckdb")
    load("duckdb", db, write_batches(tmp_path / "spool", [_records()]))
    with open_source(duckdb_path=db) as src:
        counts = export_prov(src, "wf-nul\x00", io.StringIO())
        archive = export_parquet(src, str(tmp_path / "archive"), workflow_id="wf-nul\x00")
    assert counts.activities == len(IDS)
    assert (archive.rows["tasks"], archive.rows["workflows"]) == (len(IDS), 1)
