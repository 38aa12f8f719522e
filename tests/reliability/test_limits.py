"""Limits that broke silently or loudly (issue 17, item 7): ``$in`` with more values than
PostgreSQL takes parameters, integers beyond 64 bits, batch files loaded twice."""

from __future__ import annotations

import json
import os

from reliability_helpers import load, open_db, task, write_batches

N_TASKS = 150
MANY = 70_000  # more than PostgreSQL's 65,535 parameters a statement


def _records():
    out = []
    for i in range(N_TASKS):
        out.append(
            task(
                f"t{i:04d}",
                used={"x": i, "name": f"n{i}"},
                custom_metadata={"k": i, "s": f"s{i}", "l": [i, f"e{i}"]},
            )
        )
    for v in range(3):
        out.append({"type": "object", "object_id": "obj", "version": v, "object_type": "m"})
    return out


def test_in_with_more_values_than_parameters(engine, tmp_path):
    kind, where = engine
    load(kind, where, write_batches(tmp_path / "spool", [_records()]))
    db = open_db(kind, where)
    try:
        wanted = list(range(0, N_TASKS, 7))
        ids = [f"t{i:04d}" for i in wanted]
        expected = sorted(ids)

        def task_ids(flt):
            return sorted(r["task_id"] for r in db.task_query(flt, projection=["task_id"]))

        fillers = [f"missing-{i}" for i in range(MANY)]
        assert task_ids({"task_id": {"$in": fillers + ids}}) == expected
        numbers = list(range(10_000, 10_000 + MANY))
        assert task_ids({"used.x": {"$in": numbers + wanted}}) == expected  # key/value rows
        assert task_ids({"used.name": {"$in": fillers + [f"n{i}" for i in wanted]}}) == expected
        assert task_ids({"custom_metadata.k": {"$in": numbers + wanted}}) == expected  # JSON
        assert task_ids({"custom_metadata.s": {"$in": fillers + [f"s{i}" for i in wanted]}}) == (
            expected
        )
        in_lists = {"custom_metadata.l": {"$in": fillers + [f"e{i}" for i in wanted]}}
        assert task_ids(in_lists) == expected  # an element of a JSON array
        assert task_ids({"custom_metadata.l": {"$in": numbers + wanted}}) == expected
        everything_else = sorted(set(f"t{i:04d}" for i in range(N_TASKS)) - set(ids))
        assert task_ids({"task_id": {"$nin": fillers + ids}}) == everything_else
        assert task_ids({"used.x": {"$nin": numbers + wanted}}) == everything_else
        versions = db.query(
            {"object_id": "obj", "version": {"$in": list(range(5, 5 + MANY)) + [0, 2]}},
            collection="object_history",
            projection=["version"],
        )
        assert sorted(r["version"] for r in versions) == [0, 2]
    finally:
        db.close()


def test_reloading_loaded_files_parses_nothing(engine, tmp_path, monkeypatch):
    """A file loaded whole before is skipped on its chunk hashes alone: no record is parsed."""
    from reliability_helpers import target

    from provwh.warehouse import pipeline
    from provwh.warehouse.loader import Loader

    kind, where = engine
    first = write_batches(tmp_path / "a", [[task(f"a{i}") for i in range(120)]])[0]
    second = write_batches(tmp_path / "b", [[task(f"b{i}") for i in range(30)]])[0]

    def loader():
        return Loader([target(kind, where)], max_records=50, workers=0)  # 3 chunks in `first`

    ld = loader()
    try:
        stats = ld.load_files([first])
    finally:
        ld.close()
    assert (stats.batches, stats.skipped, stats.tasks) == (3, 0, 120)

    parsed = []
    real = pipeline.normalize_chunk

    def counting(chunk):
        parsed.append((chunk.source, chunk.index))
        return real(chunk)

    monkeypatch.setattr(pipeline, "normalize_chunk", counting)
    done = []
    ld = loader()
    try:
        again = ld.load_files([first, second], on_done=done.append)
    finally:
        ld.close()
    assert parsed == [(os.path.basename(second), 0)]  # only the new file
    assert (again.files, again.batches, again.skipped) == (2, 1, 3)
    assert (again.records, again.tasks) == (150, 30)
    assert sorted(done) == sorted([first, second])
    db = open_db(kind, where)
    try:
        assert db.sql("SELECT count(*) AS n FROM tasks").to_dict("records") == [{"n": 150}]
    finally:
        db.close()


BIG = {
    "big": 2**70,
    "neg": -(2**64) - 5,
    "edge": 2**64 - 1,  # the largest orjson reads as an int
    "huge": 10**400,  # beyond the doubles too
    "list": [2**65, 1],
    "nested": {"v": 3**50},
}


def test_integers_beyond_64_bits_stay_exact(engine, tmp_path):
    """A batch file written by Python's json (Flowcept's) holds exact big integers."""
    kind, where = engine
    spool = tmp_path / "spool"
    spool.mkdir()
    path = spool / "0000-flowcept.jsonl"
    records = [task("t-big", used=BIG, generated={"out": 2**80}, custom_metadata={"id": 7**40})]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    load(kind, where, [str(path)])
    db = open_db(kind, where)
    try:
        (rec,) = db.task_query({"task_id": "t-big"})
        assert rec["used"] == BIG
        assert rec["generated"] == {"out": 2**80}
        assert rec["custom_metadata"] == {"id": 7**40}
        assert type(rec["used"]["big"]) is int
        mark = "%s" if kind == "postgres" else "?"
        rows = db.sql_rows(
            "SELECT key_path, value_type, value_text FROM task_values"
            f" WHERE task_id = {mark} AND value_type = 'int' ORDER BY key_path",
            ["t-big"],
        )[1]
        assert rows == [
            ("big", "int", str(2**70)),
            ("edge", "int", str(2**64 - 1)),
            ("huge", "int", str(10**400)),
            ("neg", "int", str(-(2**64) - 5)),
            ("nested.v", "int", str(3**50)),
            ("out", "int", str(2**80)),
        ]
        found = [r["task_id"] for r in db.task_query({"used.big": 2**70})]
        assert found == ["t-big"]
        assert [r["task_id"] for r in db.task_query({"used.huge": 10**400})] == ["t-big"]
        assert db.task_query({"used.big": float(2**70) + 2**20}) == []
        values = db.query({"task_id": "t-big"}, projection=["used.nested.v"], collection="tasks")
        assert values == [{"used": {"nested": {"v": 3**50}}}]
    finally:
        db.close()
    # and in place, over the batch file
    from provwh.query.api import DBAPI

    files = DBAPI.from_files([str(path)])
    try:
        assert files.task_query({"task_id": "t-big"})[0]["used"] == BIG
    finally:
        files.close()
