"""Sorting by a used / generated value (one join per sort key): ties, missing keys, nulls and
every value type, ascending and descending, limited and paged, two keys at once; the same
order from PostgreSQL, a DuckDB file and DuckDB over the batch files (checked against the
correlated subqueries this replaced, on the same data): missing, then null, numbers, strings,
arrays, booleans. A key holding an object has no value of its own (its leaves are stored as
``k.z``...): it sorts as missing."""

from __future__ import annotations

import pytest
from query_helpers import T0, every_source, write_batches

SOURCES = ("postgres", "duckdb", "files")

# used.k of each task (``...``: no k), the task's start (ties broken by start, then id)
VALUES = {
    "s01": (3, 5),
    "s02": (3.0, 4),  # the same number as s01: the start decides
    "s03": (-2.5, 9),
    "s04": ("b", 1),
    "s05": ("a", 2),
    "s06": ("b", 0),  # a tie with s04
    "s07": (True, 3),
    "s08": (False, 3),
    "s09": (None, 6),
    "s10": (..., 7),  # missing
    "s11": ({"z": 1}, 8),  # stored as used.k.z: no used.k
    "s12": ([1, 2], 8),
    "s13": (2**60, 10),  # beyond a double's exact integers
    "s14": (..., None),  # missing, and no start
    "s15": (0, None),
    "s16": ("", 11),
    "s17": (3, 5),  # s01's value and start: the id decides
}
ASCENDING = "s10 s11 s14 s09 s03 s15 s02 s01 s17 s13 s16 s05 s06 s04 s12 s08 s07".split()
# descending: ties still by start then id, a task without a start after those with one
DESCENDING = "s07 s08 s12 s06 s04 s05 s16 s13 s02 s01 s17 s15 s03 s09 s10 s11 s14".split()


def _batches() -> list[list[dict]]:
    records = []
    for i, (tid, (value, start)) in enumerate(VALUES.items()):
        rec = {
            "type": "task",
            "task_id": tid,
            "workflow_id": "wf-sort",
            "activity_id": f"act{i % 3}",
            "status": "FINISHED",
            "used": {} if value is ... else {"k": value},
            "generated": {"g": i % 4},
        }
        if value is not ...:
            rec["used"]["j"] = i % 2
        if start is not None:
            rec["started_at"] = T0 + start
        records.append(rec)
    return [records[:9], records[9:]]


@pytest.fixture(scope="module")
def dbs(pg_server, tmp_path_factory):
    files = write_batches(tmp_path_factory.mktemp("sortv") / "spool", _batches())
    with every_source(pg_server, files, tmp_path_factory) as out:
        yield out


@pytest.fixture(params=SOURCES)
def db(request, dbs):
    return dbs[request.param]


def _ids(rows):
    return [r["task_id"] for r in rows]


def test_sort_by_a_used_value_mixed_types_ties_and_missing(db):
    assert _ids(db.task_query({}, projection=["task_id"], sort=[("used.k", 1)])) == ASCENDING
    assert _ids(db.task_query({}, projection=["task_id"], sort=[("used.k", -1)])) == DESCENDING


def test_limited_and_paged_sorts_are_the_whole_order(db):
    for sort, whole in (([("used.k", 1)], ASCENDING), ([("used.k", -1)], DESCENDING)):
        pages = []
        for skip in range(0, len(whole), 5):
            pages += _ids(db.task_query({}, sort=sort, limit=5, skip=skip))
        assert pages == whole
        # a filter on another key, and whole records
        rows = db.task_query({"used.j": 1}, sort=sort, limit=4)
        odd = [t for t in whole if VALUES[t][0] is not ... and list(VALUES).index(t) % 2]
        assert _ids(rows) == odd[:4]
        assert all(r["used"]["j"] == 1 for r in rows)
        # the filtered order, page by page (DuckDB groups only the matching tasks' values)
        pages = []
        for skip in range(0, len(odd) + 3, 3):
            pages += _ids(db.task_query({"used.j": 1}, sort=sort, limit=3, skip=skip))
        assert pages == odd


def test_two_value_keys_filtered_and_paged(db):
    sort = [("generated.g", -1), ("used.k", 1)]
    kept = [t for t in VALUES if list(VALUES).index(t) % 3 != 2]  # activities act0 and act1
    whole = sorted(kept, key=lambda t: (-_g(t), ASCENDING.index(t)))
    flt = {"activity_id": {"$in": ["act0", "act1"]}}
    assert _ids(db.task_query(flt, projection=["task_id"], sort=sort)) == whole
    pages = []
    for skip in range(0, len(whole), 4):
        pages += _ids(db.task_query(flt, projection=["task_id"], sort=sort, limit=4, skip=skip))
    assert pages == whole
    assert len(whole) == 12


def test_two_value_keys_and_a_column(db):
    rows = db.task_query(
        {}, projection=["task_id"], sort=[("generated.g", -1), ("used.k", 1), ("task_id", 1)]
    )
    assert _ids(rows) == sorted(VALUES, key=lambda t: (-_g(t), ASCENDING.index(t)))
    # the same key twice, and a key no task has
    rows = db.task_query(
        {}, projection=["task_id"], sort=[("used.k", -1), ("used.k", 1), ("used.none", 1)]
    )
    assert _ids(rows) == DESCENDING
    # a generated key: numbers, then a task's start, then its id
    rows = db.task_query({}, projection=["task_id"], sort=[("generated.g", 1)], limit=5)
    assert _ids(rows) == ["s05", "s01", "s17", "s09", "s13"]


def _g(tid: str) -> int:
    return list(VALUES).index(tid) % 4


def test_timeseries_by_a_used_value(db):
    """Present values first, by value, then the id (no start); tasks without one last."""
    rows = db.telemetry_timeseries({}, ["used.j"], x_field="used.k", limit=0)
    present = "s11 s09 s03 s15 s01 s02 s17 s13 s16 s05 s04 s06 s12 s08 s07"
    assert _ids(rows) == [*present.split(), "s10", "s14"]
