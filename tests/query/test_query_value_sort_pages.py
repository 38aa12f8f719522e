"""Pages sorted on one used / generated value, descending: PostgreSQL reads them class by class
(``query.value_sort``: values of rank 2 and more, then a walk over the numbers, then nulls and
missing values). Every page must be the slice of the whole order the general query gives (no
limit), and the same as DuckDB's, on values made to trip it: a task with several numbers on
one key (a dotted key beside a nested one), a null beside a number, NaN, integers beyond a
double's, ties across page boundaries, more tasks of rank 2 than ``FEW``, filters on the
sorted key itself and on others."""

from __future__ import annotations

import math

import pytest
from query_helpers import T0, every_source, write_batches

from provwh.query import value_sort


def _used(i: int) -> dict:
    """used of task i: k takes every shape in turn."""
    shape = i % 13
    if shape == 0:
        return {"j": i}  # no k
    if shape == 1:
        return {"k": None, "j": i}
    if shape == 2:
        return {"k": i % 5, "j": i}
    if shape == 3:  # k.z as a nested key and "k.z" as a dotted one: two rows on used.k.z
        return {"k": {"z": i % 4}, "k.z": -(i % 3), "j": i}
    if shape == 4:
        return {"k": float("nan"), "j": i}
    if shape == 5:
        return {"k": 2**60 + (i % 2), "j": i}  # the same double, different integers
    if shape == 6:
        return {"k": f"s{i % 4}", "j": i}
    if shape == 7:
        return {"k": [i % 2], "j": i}
    if shape == 8:
        return {"k": i % 2 == 0, "j": i}
    if shape == 9:
        return {"k": {"z": None}, "k.z": 2, "j": i}  # a null and a number on used.k.z
    if shape == 10:
        return {"k": 3.5, "j": i}  # ties
    if shape == 11:
        return {"k": {}, "j": i}  # an empty dict: a value of its own
    return {"k": -1.25 * (i % 7), "j": i}


N = 260


def _batches() -> list[list[dict]]:
    records = []
    for i in range(N):
        rec = {
            "type": "task",
            "task_id": f"v{i:03d}",
            "workflow_id": f"wf-{i % 2}",
            "status": "FINISHED",
            "used": _used(i),
            "generated": {"g": i % 3} if i % 4 else {},
        }
        if i % 17:
            rec["started_at"] = T0 + (i * 7) % 50  # ties on the start too
        records.append(rec)
    # many strings on used.s: more tasks of rank 2 than FEW reads one by one
    for i in range(value_sort.FEW + 200):  # 1,080 strings
        records.append(
            {"type": "task", "task_id": f"w{i:04d}", "workflow_id": "wf-s",
             "used": {"s": f"t{i % 9}"} if i % 10 else {"s": i}, "started_at": T0 + i}
        )  # fmt: skip
    return [records[: N // 2], records[N // 2 :]]


@pytest.fixture(scope="module")
def dbs(pg_server, tmp_path_factory):
    files = write_batches(tmp_path_factory.mktemp("vsort") / "spool", _batches())
    with every_source(pg_server, files, tmp_path_factory) as out:
        yield out


def _ids(rows):
    return [r["task_id"] for r in rows]


FILTERS = [
    {},
    {"workflow_id": "wf-1"},
    {"used.k": {"$gte": 0}},
    {"used.k": {"$exists": True}},
    {"used.j": {"$lt": 100}},
    {"$or": [{"used.k": None}, {"used.k": {"$lt": 1}}]},
    {"used.k.z": {"$exists": True}},
]


@pytest.fixture(params=["whole", "cut"])
def walk(request, monkeypatch):
    """The walk over the numbers as long as it is (it reads all of these), or cut after two
    numbers per row of the page (at least 3): its pages must settle or give way."""
    if request.param == "cut":
        monkeypatch.setattr(value_sort, "WALK_MIN", 3)
        monkeypatch.setattr(value_sort, "WALK_PER_ROW", 2)
    return request.param


@pytest.fixture
def settled(monkeypatch):
    """Of the pages ``value_sort`` was asked for, how many it settled, and how many it gave
    up to the general query."""
    from provwh.query import find

    counts = {"settled": 0, "general": 0}
    asked = []
    page_ids, page = value_sort.page_ids, find._value_sorted_page

    def ask(*args):
        asked.append(1)
        return page_ids(*args)

    def spy(*args):
        del asked[:]
        q = page(*args)
        if asked:
            counts["settled" if q is not None else "general"] += 1
        return q

    monkeypatch.setattr(value_sort, "page_ids", ask)
    monkeypatch.setattr(find, "_value_sorted_page", spy)
    return counts


@pytest.mark.parametrize("field", ["used.k", "used.k.z", "generated.g", "used.nothing"])
@pytest.mark.parametrize("flt", FILTERS, ids=[str(f) for f in FILTERS])
def test_descending_pages_are_slices_of_the_whole_order(dbs, field, flt, walk):
    pg, duck = dbs["postgres"], dbs["duckdb"]
    whole = _ids(pg.task_query(flt, projection=["task_id"], sort=[(field, -1)]))
    assert whole == _ids(duck.task_query(flt, projection=["task_id"], sort=[(field, -1)]))
    assert whole, flt
    for limit in (1, 7, 50):
        for skip in (0, 3, 40, len(whole) - 2):
            page = pg.task_query(flt, projection=["task_id"], sort=[(field, -1)], limit=limit,
                                 skip=skip)  # fmt: skip
            assert _ids(page) == whole[skip : skip + limit], (limit, skip)


def test_many_values_of_rank_two_and_whole_records(dbs):
    pg, duck = dbs["postgres"], dbs["duckdb"]
    flt = {"workflow_id": "wf-s"}
    whole = _ids(pg.task_query(flt, projection=["task_id"], sort=[("used.s", -1)]))
    assert len(whole) == value_sort.FEW + 200
    assert whole[:3] == ["w0008", "w0017", "w0026"]  # "t8", by start
    page = pg.task_query(flt, sort=[("used.s", -1)], limit=5, skip=value_sort.FEW + 194)
    assert _ids(page) == whole[-6:-1]
    assert [r["used"]["s"] for r in page] == [50, 40, 30, 20, 10]  # numbers after strings
    assert page == duck.task_query(flt, sort=[("used.s", -1)], limit=5, skip=value_sort.FEW + 194)


def test_numbers_in_order_nan_first_and_big_integers_apart(dbs):
    rows = dbs["postgres"].task_query({"used.k": {"$gte": -1e300}}, sort=[("used.k", -1)],
                                      limit=40)  # fmt: skip
    ks = [r["used"]["k"] for r in rows]
    assert [k for k in ks if not (isinstance(k, float) and math.isnan(k))] == sorted(
        (k for k in ks if not (isinstance(k, float) and math.isnan(k))), reverse=True
    )
    assert 2**60 + 1 in ks and 2**60 in ks


def test_the_walk_settles_pages_or_gives_way(dbs, walk, settled):
    """The page of the highest numbers comes from the walk (when the filter matches them, the
    page's last number is above the walk's last); one whose tasks lie beyond the walk, or whose
    last number ties with the walk's last, from the general query."""
    pg = dbs["postgres"]
    whole = _ids(pg.task_query({}, projection=["task_id"], sort=[("generated.g", -1)]))
    assert settled == {"settled": 0, "general": 0}  # no limit: the general query
    # generated.g: 2, 1, 0 (ties of ~65 tasks each), then the tasks without it
    assert _ids(pg.task_query({}, sort=[("generated.g", -1)], limit=5)) == whole[:5]
    expected = {"whole": 1, "cut": 0}[walk]  # cut: the 5th number ties with the walk's last
    assert settled == {"settled": expected, "general": 1 - expected}
    # used.j: every task's own number (distinct): the walk settles the top page either way
    top = _ids(pg.task_query({}, projection=["task_id"], sort=[("used.j", -1)]))
    assert _ids(pg.task_query({}, sort=[("used.j", -1)], limit=4)) == top[:4]
    assert settled["settled"] == expected + 1
    # a filter none of the highest numbers matches: beyond a cut walk
    flt = {"used.j": {"$lt": 10}}
    low = _ids(pg.task_query(flt, projection=["task_id"], sort=[("used.j", -1)]))
    assert low == [f"v{i:03d}" for i in range(9, -1, -1)]
    assert _ids(pg.task_query(flt, sort=[("used.j", -1)], limit=3)) == low[:3]
    assert settled["settled"] == expected + 1 + {"whole": 1, "cut": 0}[walk]
