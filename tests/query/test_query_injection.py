"""Hostile keys and values: every one reaches SQL bound or quoted, on both engines."""

from __future__ import annotations

import re

import duckdb
import psycopg
import pytest
from query_helpers import T0, every_source, write_batches

from provwh.core.model import TASK_FIELDS
from provwh.query.guard import ReadOnlyError, split_statements

HOSTILE = [
    "x'; DROP TABLE tasks;--",
    "' OR '1'='1",
    '" OR 1=1 --',
    'a"b',
    "a\\b",
    "%s",
    "%(x)s",
    "?",
    "$1",
    "{}",
    "/*",
    "*/ SELECT 1",
    ";",
    "$$",
    "$tag$",
    "~0/1",
    "key with spaces",
    "\n\t",
    "ü🙂",
    "a\x00b",
    "\\x00",
    "",
]
# keys with a dot are paths (used.a.b); they are still tried, for errors, below
KEYS = [s for s in HOSTILE if "." not in s and s]


def _records():
    recs = [{"type": "workflow", "workflow_id": "wf-inj", "campaign_id": "camp-inj"}]
    for i, s in enumerate(HOSTILE):
        rec = {
            "type": "task",
            "task_id": f"inj-{i:02d}",
            "workflow_id": "wf-inj",
            "activity_id": s or "empty",
            "started_at": T0 + i,
            "ended_at": T0 + i + 1,
            "used": {"n": i, **({s: s} if s else {"empty": s})},
            "custom_metadata": {s: s} if s else {"empty": s},
        }
        if s and s not in TASK_FIELDS and s != "type" and not s.startswith("$") and "." not in s:
            rec[s] = s  # an unknown top-level field: kept in ``extra``
        recs.append(rec)
    return recs


@pytest.fixture(scope="module")
def dbs(pg_server, tmp_path_factory):
    """The hostile records in PostgreSQL and in a DuckDB file (loaded once)."""
    paths = write_batches(tmp_path_factory.mktemp("inj") / "spool", [_records()])
    with every_source(pg_server, paths, tmp_path_factory, as_files=False) as out:
        yield out


@pytest.fixture(params=["duckdb", "postgres"])
def db(request, dbs):
    return dbs[request.param]


def stored(key):
    """A key as given back: the original (one holding NUL is stored escaped, and restored)."""
    return key


def _count(db):
    _, rows = db.sql_rows("SELECT count(*) FROM tasks")
    return rows[0][0]


def ids(records):
    return sorted(r["task_id"] for r in records)


def test_hostile_keys_and_values_are_data(db):
    with db.hold():  # one DuckDB connection for the many queries below
        _hostile_keys_and_values_are_data(db)


def _hostile_keys_and_values_are_data(db):
    n = len(HOSTILE)
    assert _count(db) == n
    for i, s in enumerate(HOSTILE):
        tid = f"inj-{i:02d}"
        if s in KEYS:
            assert ids(db.task_query({f"used.{s}": s})) == [tid], s
            assert ids(db.task_query({f"custom_metadata.{s}": s})) == [tid], s
            assert ids(db.task_query({f"used.{s}": {"$in": [s, 1]}})) == [tid], s
            assert ids(db.task_query({f"used.{s}": {"$gte": s, "$lte": s}})) == [tid], s
            assert ids(db.task_query({f"used.{s}": {"$exists": True}})) == [tid], s
            assert ids(db.task_query({f"custom_metadata.{s}": {"$ne": "other"}})) == [tid], s
            if s not in TASK_FIELDS and not s.startswith("$"):
                assert ids(db.task_query({s: s})) == [tid], s
            got = db.task_query({"task_id": tid}, projection=["task_id", f"used.{s}"])
            assert got == [{"task_id": tid, "used": {stored(s): s}}], s
        assert ids(db.task_query({"activity_id": s or "empty"})) == [tid], s
        assert ids(db.task_query({"custom_metadata.nothing": s})) == [], s
        assert ids(db.task_query({"used.n": {"$in": [i, s]}})) == [tid], s
        assert db.task_query({"task_id": s}) == []
        assert db.get_upstream(s or "x") == [] and db.get_downstream(s or "x") == []
        assert db.lineage_graph(task_id=s or "x")["edges"] == []
        assert db.delete_workflow_data(s or "x") == {"workflows": 0, "tasks": 0, "objects": 0}
        with pytest.raises(ValueError):
            db.get_blob_object(s or "x")
    assert _count(db) == n


def test_records_come_back_intact(db):
    for i, s in enumerate(HOSTILE):
        [rec] = db.task_query({"task_id": f"inj-{i:02d}"})
        assert rec["used"] == {"n": i, **({stored(s): s} if s else {"empty": s})}
        assert rec["activity_id"] == (s or "empty")
        if s in KEYS and s not in TASK_FIELDS and not s.startswith("$"):
            assert rec[stored(s)] == s


def test_hostile_names_in_sort_projection_aggregation(db):
    with db.hold():
        _hostile_names_in_sort_projection_aggregation(db)


def _hostile_names_in_sort_projection_aggregation(db):
    n = len(HOSTILE)
    for s in [s for s in HOSTILE if s]:
        rows = db.task_query({}, projection=[f"used.{s}", "task_id"], sort=[(f"used.{s}", -1)])
        assert len(rows) == n
        rows = db.task_query({}, projection=[s], sort=[(s, 1)])
        assert len(rows) == n
        agg = db.task_query(
            {"workflow_id": "wf-inj"},
            projection=[f"custom_metadata.{s}"],
            aggregation=[("count", f"used.{s}"), ("max", s)],
        )
        assert sum(r[f"count_used_{s.replace('.', '_')}"] for r in agg) == (1 if s in KEYS else 0)
        db.telemetry_timeseries({}, [s, f"used.{s}"], x_field=f"used.{s}")
    assert _count(db) == n


def test_hostile_regex_values(db):
    assert db.task_query({"activity_id": {"$regex": "x'; DROP TABLE tasks;--"}}) != []
    assert ids(db.task_query({"activity_id": {"$regex": "^' OR"}})) == ["inj-01"]
    with pytest.raises((psycopg.Error, duckdb.Error)):  # the engine's error, raised
        db.task_query({"activity_id": {"$regex": "("}})
    assert _count(db) == len(HOSTILE)


@pytest.mark.parametrize(
    "flt",
    [
        {"$where": "1 = 1"},
        {"$expr": {"$eq": [1, 1]}},
        {"used.n": {"$where": 1}},
        {"used.n": {"$elemMatch": {"$gt": 1}}},
        {"used.n": {"$gt": 1, "x": 2}},
        {"used.n": {"$gt": [1]}},
        {"used.n": {"$gt": None}},
        {"used.n": {"$in": 3}},
        {"used.n": {"$options": "i"}},
        {"used.n": {"$regex": "a", "$options": "q"}},
        {"used.n": {"$regex": 5}},
        {"used.n": {"$not": 3}},
        {"used.n": {"$exists": "yes"}},
        {"$and": {}},
        {"$or": []},
        {"$nor": [1]},
        {1: 2},
        {"": 1},
        {"started_at": {"$gt": "x'; DROP TABLE tasks;--"}},
        "status = 'FINISHED'",
        ["status"],
    ],
)
def test_bad_filters_raise(db, flt):
    with pytest.raises(ValueError):
        db.task_query(flt)
    assert _count(db) == len(HOSTILE)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sort": [("used.n", 2)]},
        {"sort": [("used.n", True)]},
        {"sort": "used.n"},
        {"sort": [(3, 1)]},
        {"projection": [3]},
        {"projection": {"a": 1, "b": 0}},
        {"limit": -1},
        {"limit": "10"},
        {"aggregation": [("drop", "used.n")]},
        {"aggregation": [("avg", "used.n; DROP TABLE tasks")], "projection": ["a", "b"]},
        {"aggregation": "avg"},
        {"collection": "tasks; DROP TABLE tasks"},
        {"collection": ["tasks"]},
    ],
)
def test_bad_query_arguments_raise(db, kwargs):
    with pytest.raises(ValueError):
        db.query({}, **kwargs)
    assert _count(db) == len(HOSTILE)


WRITES = [
    "DROP TABLE tasks",
    "DELETE FROM tasks",
    "delete from tasks where true",
    "UPDATE tasks SET status = 'x'",
    "INSERT INTO tasks (task_id) VALUES ('z')",
    "CREATE TABLE evil AS SELECT 1",
    "SELECT 1; DROP TABLE tasks",
    "SELECT 1; DELETE FROM tasks;",
    "/* hi */ DROP TABLE tasks",
    "-- comment\nTRUNCATE tasks",
    "COPY tasks TO '/tmp/provwh_evil.csv'",
    "EXPLAIN ANALYZE DELETE FROM tasks",
    "ALTER TABLE tasks ADD COLUMN evil TEXT",
    "GRANT ALL ON tasks TO PUBLIC",
    "SET search_path = evil",
    "VACUUM",
    "CHECKPOINT",
]


@pytest.mark.parametrize("statement", WRITES)
def test_sql_refuses_writes(db, statement):
    with pytest.raises(ReadOnlyError):
        db.sql(statement)
    assert _count(db) == len(HOSTILE)


def test_sql_refuses_writes_hidden_in_queries(db):
    # a data-modifying CTE passes the keyword check: PostgreSQL's read-only transaction
    # refuses it; DuckDB's parser does not accept it at all
    expected = ReadOnlyError if db.engine == "postgresql" else duckdb.ParserException
    with pytest.raises(expected):
        db.sql("WITH d AS (DELETE FROM tasks RETURNING task_id) SELECT * FROM d")
    assert _count(db) == len(HOSTILE)


def test_sql_binds_hostile_parameters(db):
    mark = "%s" if db.engine == "postgresql" else "?"
    for i, s in enumerate(HOSTILE):
        if "\x00" in s:
            continue  # PostgreSQL text cannot hold NUL (stored escaped)
        df = db.sql(f"SELECT task_id FROM v_tasks WHERE activity_id = {mark}", [s or "empty"])
        assert list(df["task_id"]) == [f"inj-{i:02d}"]
    df = db.sql("SELECT '100%' AS pct, '?' AS q")
    assert df.to_dict("records") == [{"pct": "100%", "q": "?"}]


def test_statement_splitter():
    assert split_statements("select ';' -- ; \n ; select $$;$$ ; /* ; */") == [
        "select ';' -- ; \n ",
        " select $$;$$ ",
    ]
    assert len(split_statements("select E'\\';'; drop table x")) == 2
    assert split_statements("select 1;;") == ["select 1"]


def test_regex_of_compiled_pattern(db):
    assert ids(db.task_query({"activity_id": re.compile(r"^KEY WITH", re.I)})) == ["inj-16"]
    with pytest.raises(ValueError):
        db.task_query({"activity_id": re.compile("a", re.MULTILINE)})
