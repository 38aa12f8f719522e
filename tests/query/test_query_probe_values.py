"""A filter naming one workflow of few tasks tests its used / generated conditions task by
task on PostgreSQL (``find.PROBE_MAX``, ``FilterCompiler.probe_values``): the same records,
in the same order, as the semi-join it replaces there, and as DuckDB and the batch files give;
a workflow above the bound keeps the semi-join."""

from __future__ import annotations

import pytest
from query_helpers import T0, every_source, write_batches

from provwh.query import find
from provwh.query.paths import collection

# two workflows: wf-small (12 tasks) and wf-big (30 tasks); used.n = i, used.s a string,
# generated.g = i % 4, and a task without used.n in each
SMALL, BIG = 12, 30


def _records() -> list[dict]:
    out = []
    for wf, n in (("wf-small", SMALL), ("wf-big", BIG)):
        for i in range(n):
            used = {"n": i, "s": f"s{i % 3}", "d": {"deep": i % 2}}
            if i == 5:
                del used["n"]
            out.append(
                {
                    "type": "task",
                    "task_id": f"{wf}-{i:02d}",
                    "workflow_id": wf,
                    "activity_id": "act",
                    "started_at": T0 + i,
                    "used": used,
                    "generated": {"g": i % 4},
                }
            )
    return out


@pytest.fixture(scope="module")
def dbs(pg_server, tmp_path_factory):
    records = _records()
    files = write_batches(tmp_path_factory.mktemp("probe") / "spool", [records[:20], records[20:]])
    with every_source(pg_server, files, tmp_path_factory) as out:
        yield out


FILTERS = [
    {"used.n": {"$gte": 6}},
    {"used.n": {"$in": [1, 2, 9]}, "used.s": "s0"},
    {"used.n": {"$exists": False}},
    {"used.n": {"$ne": 3}, "generated.g": {"$lt": 2}},
    {"$or": [{"used.n": 1}, {"used.d.deep": 1}], "generated.g": 3},
    {"used.s": {"$regex": "^s[12]$"}},
]
SORTS = [None, [("used.n", -1)], [("started_at", -1)], [("generated.g", 1), ("used.n", -1)]]


def _ids(rows):
    return [r["task_id"] for r in rows]


@pytest.mark.parametrize("workflow", ["wf-small", "wf-big"])
def test_probed_conditions_match_the_semi_join_and_duckdb(dbs, monkeypatch, workflow):
    pg, duck, files = dbs["postgres"], dbs["duckdb"], dbs["files"]
    monkeypatch.setattr(find, "PROBE_MAX", 20)  # wf-small is probed, wf-big is not
    results = {}
    for i, flt in enumerate(FILTERS):
        flt = {"workflow_id": workflow, **flt}
        for j, sort in enumerate(SORTS):
            for limit, skip in ((0, 0), (4, 0), (4, 4)):
                got = _ids(pg.task_query(flt, sort=sort, limit=limit, skip=skip))
                assert got == _ids(duck.task_query(flt, sort=sort, limit=limit, skip=skip))
                assert got == _ids(files.task_query(flt, sort=sort, limit=limit, skip=skip))
                results[i, j, limit, skip] = got
    monkeypatch.setattr(find, "PROBE_MAX", 0)  # no workflow probed: the semi-join
    for (i, j, limit, skip), got in results.items():
        flt = {"workflow_id": workflow, **FILTERS[i]}
        assert _ids(pg.task_query(flt, sort=SORTS[j], limit=limit, skip=skip)) == got
    # the filters select what they say (not just the same on every path)
    n_of = {t: int(t[-2:]) for t in results[0, 0, 0, 0]}
    assert sorted(n_of.values()) == [i for i in range(6, SMALL if workflow == "wf-small" else BIG)]
    assert results[2, 0, 0, 0] == [f"{workflow}-05"]


def test_which_filters_are_probed(dbs, monkeypatch):
    backend = dbs["postgres"]._backend
    monkeypatch.setattr(find, "PROBE_MAX", 20)
    coll = collection("tasks")
    assert find._probe_values(backend, coll, {"workflow_id": "wf-small", "used.n": 1})
    assert not find._probe_values(backend, coll, {"workflow_id": "wf-big", "used.n": 1})
    assert not find._probe_values(backend, coll, {"workflow_id": "wf-small"})
    assert not find._probe_values(backend, coll, {"used.n": 1})
    assert not find._probe_values(dbs["duckdb"]._backend, coll, {"workflow_id": "wf-small",
                                                                  "used.n": 1})  # fmt: skip
