"""Loading batch files into DuckDB and PostgreSQL: the same results on both engines."""

from __future__ import annotations

import datetime as dt
import json

import orjson
import psycopg
import pytest
from warehouse_helpers import (
    T0,
    as_json,
    count,
    dump,
    query,
    task,
    workflow,
    write_jsonl,
    write_lines,
)

from provwh.transport.batches import write_batch
from provwh.warehouse.escape import unescape
from provwh.warehouse.loader import Loader
from provwh.warehouse.pg import PgTarget
from provwh.warehouse.values import value_hash


def load(target, *paths, **kw):
    loader = Loader([target], **kw)
    stats = None
    for p in paths:
        s = loader.load_file(p)
        stats = s if stats is None else stats.add(s)
    loader.close()
    return stats


def test_jsonl_load_exact_rows(engine, tmp_path):
    kind, loc, target = engine
    path = write_jsonl(tmp_path / "b1.jsonl", [workflow(), *[task(i) for i in range(10)]])
    stats = load(target, path)
    assert (stats.batches, stats.skipped, stats.tasks, stats.workflows, stats.rejects) == (
        1,
        0,
        10,
        1,
        0,
    )
    assert stats.rows == 1 + 10 + 60 + 20  # workflow, tasks, values, telemetry
    assert count(loc, "tasks") == 10 and count(loc, "workflows") == 1
    assert count(loc, "task_values") == 60 and count(loc, "task_telemetry") == 20
    row = query(
        loc,
        "SELECT task_id, workflow_id, activity_id, status, started_at, ended_at,"
        " hostname FROM tasks WHERE task_id = %s",
        ["0000000000000003-3"],
    )
    assert row == [
        (
            "0000000000000003-3",
            "wf-1",
            "step",
            "FINISHED",
            dt.datetime(2023, 11, 14, 22, 13, 23),
            dt.datetime(2023, 11, 14, 22, 13, 23, 250000),
            "node-1",
        )
    ]
    vals = query(
        loc,
        "SELECT key_path, value_type, value_text, value_num, value_hash"
        " FROM task_values WHERE task_id = %s AND direction = 'used'"
        " ORDER BY ordinal",
        ["0000000000000003-3"],
    )
    assert vals == [
        ("lr", "float", None, 0.5, value_hash(0.5)),
        ("opts.epochs", "int", None, 3.0, value_hash(3)),
        ("path", "str", "/data/in_3.csv", None, value_hash("/data/in_3.csv")),
        ("x", "int", None, 3.0, value_hash(3)),
    ]
    tel = query(
        loc,
        "SELECT phase, cpu_percent, mem_used, proc_rss, disk_write_bytes,"
        " net_bytes_recv FROM task_telemetry WHERE task_id = %s ORDER BY phase",
        ["0000000000000003-3"],
    )
    assert tel == [("end", 50.0, 3004, 1004, 20, 8), ("start", 50.0, 3003, 1003, 20, 8)]
    assert query(loc, "SELECT batch_hash, records, tasks, rejects FROM batches") == [
        (query(loc, "SELECT batch_hash FROM batches")[0][0], 11, 10, 0)
    ]


def test_jsonl_and_parquet_give_identical_results_on_both_engines(pg_url, tmp_path):
    from provwh.warehouse.duck import DuckTarget
    from provwh.warehouse.pg import PgTarget

    records = [
        workflow(),
        *[task(i, tags=["t"], dependencies=["0000000000000000-0"]) for i in range(1, 6)],
        {"activity_id": "light", "used": {"v": [1, 2], "flag": True, "n": None}},
        {
            "type": "object",
            "object_id": "m1",
            "version": 0,
            "object_type": "ml_model",
            "data": {"$binary": {"base64": "AAEC", "subType": "00"}},
        },
    ]
    jsonl = tmp_path / "a.jsonl"
    parquet = tmp_path / "a.parquet"
    write_batch(str(jsonl), records, "jsonl", fsync=False)
    write_batch(str(parquet), records, "parquet", fsync=False)
    duck_j, duck_p = str(tmp_path / "j.duckdb"), str(tmp_path / "p.duckdb")
    load(DuckTarget(duck_j), jsonl)
    load(DuckTarget(duck_p), parquet)
    pg = PgTarget(pg_url)
    load(pg, jsonl)
    d_j, d_p, d_pg = dump(duck_j), dump(duck_p), dump(pg_url)
    assert d_j["tasks"] == d_p["tasks"] == d_pg["tasks"]
    for table in (
        "workflows",
        "task_values",
        "task_telemetry",
        "task_tags",
        "task_edges",
        "data_objects",
    ):
        assert d_j[table] == d_p[table] == d_pg[table], table
    assert len(d_pg["tasks"]) == 6 and len(d_pg["task_edges"]) == 5
    assert d_pg["data_objects"][0][:3] == ("m1", 0, "ml_model")
    obj = query(pg_url, "SELECT data, data_sha256, object_size_bytes FROM data_objects")[0]
    assert bytes(obj[0]) == b"\x00\x01\x02" and obj[2] == 3
    assert obj[1] == "ae4b3280e56e2faf83f414a6e3dabe9d5fbe18976544c05fed121accb85b53fc"
    # JSONL and Parquet chunks hash differently: the ledger has one row per file
    assert d_j["batches"][0][0] != d_p["batches"][0][0]


def test_parts_merge_across_batches(engine, tmp_path):
    kind, loc, target = engine
    b1 = write_jsonl(
        tmp_path / "1.jsonl",
        [
            workflow(),
            {
                "type": "task",
                "task_id": "t1",
                "workflow_id": "wf-1",
                "status": "RUNNING",
                "used": {"a": 1},
                "started_at": T0,
                "tags": ["x"],
                "parent_task_id": "p0",
            },
        ],
    )
    b2 = write_jsonl(
        tmp_path / "2.jsonl",
        [
            {
                "type": "task",
                "task_id": "t1",
                "status": "FINISHED",
                "used": {"b": 2},
                "generated": {"c": 3},
                "ended_at": T0 + 2,
                "parent_task_id": "p1",
            },
            {"type": "task", "task_id": "t1", "stdout": "done"},
            workflow(ended_at=T0 + 5, status="FINISHED", name=None),
        ],
    )
    load(target, b1, b2)
    assert count(loc, "tasks") == 1 and count(loc, "workflows") == 1
    row = query(loc, "SELECT status, started_at, ended_at, stdout, used, workflow_id FROM tasks")[0]
    assert row[:4] == (
        "FINISHED",
        dt.datetime(2023, 11, 14, 22, 13, 20),
        dt.datetime(2023, 11, 14, 22, 13, 22),
        "done",
    )
    assert as_json(row[4]) == {"a": 1, "b": 2} and row[5] == "wf-1"
    assert query(
        loc, "SELECT direction, key_path FROM task_values ORDER BY direction, key_path"
    ) == [("generated", "c"), ("used", "a"), ("used", "b")]
    assert query(loc, "SELECT tag FROM task_tags") == [("x",)]
    assert query(loc, "SELECT src_task_id, dst_task_id, kind FROM task_edges") == [
        ("p1", "t1", "parent")
    ]
    wf = query(loc, "SELECT name, status, started_at, ended_at FROM workflows")[0]
    assert wf == (
        "demo",
        "FINISHED",
        dt.datetime(2023, 11, 14, 22, 13, 20),
        dt.datetime(2023, 11, 14, 22, 13, 25),
    )


def test_replayed_batch_is_skipped_by_the_ledger(engine, tmp_path):
    kind, loc, target = engine
    path = write_jsonl(tmp_path / "b.jsonl", [task(i) for i in range(5)])
    first = load(target, path)
    copy = tmp_path / "renamed.jsonl"
    copy.write_bytes(open(path, "rb").read())
    again = load(target, path, str(copy))
    assert (first.batches, first.skipped) == (1, 0)
    assert (again.batches, again.skipped, again.rows) == (0, 2, 0)
    assert count(loc, "tasks") == 5 and count(loc, "task_values") == 30
    assert count(loc, "batches") == 1


def test_flowcept_records_without_type_ids_or_times_load_with_stable_ids(pg_url, tmp_path):
    from provwh.warehouse.duck import DuckTarget
    from provwh.warehouse.pg import PgTarget

    lines = [
        orjson.dumps({"activity_id": "loop", "used": {"i": 0}, "workflow_id": "w"}),
        orjson.dumps({"activity_id": "loop", "used": {"i": 0}, "workflow_id": "w"}),
        orjson.dumps({"task_id": "1700000000.123", "activity_id": "f", "generated": {"y": 1}}),
        orjson.dumps({"workflow_id": "w", "name": "flowcept-run", "flowcept_version": "0.9"}),
    ]
    path = write_lines(tmp_path / "flowcept_buffer.jsonl", lines)
    ids = []
    for target, loc in (
        (DuckTarget(tmp_path / "a.duckdb"), tmp_path / "a.duckdb"),
        (DuckTarget(tmp_path / "b.duckdb"), tmp_path / "b.duckdb"),
        (PgTarget(pg_url), pg_url),
    ):
        stats = load(target, path)
        assert (stats.tasks, stats.workflows, stats.rejects) == (3, 1, 0)
        ids.append(query(loc, "SELECT task_id, started_at FROM tasks ORDER BY task_id"))
    assert ids[0] == ids[1] == ids[2]
    assert len({t for t, _ in ids[0]}) == 3 and "1700000000.123" in {t for t, _ in ids[0]}
    assert all(started is None for _, started in ids[0])


def test_malformed_lines_are_rejected_and_the_rest_loads(engine, tmp_path):
    kind, loc, target = engine
    path = write_lines(
        tmp_path / "b.jsonl",
        [
            orjson.dumps(task(1)),
            b'{"type": "task", "task_id": ',
            b"42",
            orjson.dumps({"type": "mystery"}),
            orjson.dumps(task(2)),
        ],
    )
    stats = load(target, path)
    assert (stats.tasks, stats.rejects, stats.batches) == (2, 3, 1)
    assert count(loc, "tasks") == 2
    rejects = query(loc, "SELECT lineno, source, reason, raw FROM rejects ORDER BY lineno")
    assert [(r[0], r[1]) for r in rejects] == [(2, "b.jsonl"), (3, "b.jsonl"), (4, "b.jsonl")]
    assert (
        rejects[0][2].startswith("invalid JSON") and rejects[0][3] == '{"type": "task", "task_id":'
    )
    assert rejects[1][2] == "not a JSON object: int"
    assert rejects[2][2] == "unsupported record type 'mystery'"


def test_rejects_file_is_written(tmp_path, duck_path):
    from provwh.warehouse.duck import DuckTarget

    path = write_lines(tmp_path / "b.jsonl", [orjson.dumps(task(1)), b"oops"])
    Loader([DuckTarget(duck_path)]).load_file(path, rejects_path=tmp_path / "r.jsonl")
    lines = (tmp_path / "r.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["lineno"] for x in lines] == [2]
    assert orjson.loads(lines[0])["raw"] == "oops"


def test_nul_in_text_survives_escaped(engine, tmp_path):
    kind, loc, target = engine
    rec = {
        "type": "task",
        "task_id": "t\x00nul",
        "activity_id": "act\x00",
        "used": {"blob": "a\x00b", "list": ["\x00"]},
        "stdout": "line\x00",
    }
    load(target, write_jsonl(tmp_path / "b.jsonl", [rec]))
    row = query(loc, "SELECT task_id, activity_id, used, stdout, extra FROM tasks")[0]
    assert row[0] == "t\\u0000nul" and row[1] == "act\\u0000" and row[3] == "line\\u0000"
    extra = as_json(row[4])
    assert unescape(extra["task_id"]) == "t\x00nul" and unescape(extra["stdout"]) == "line\x00"
    assert unescape(as_json(row[2])) == {"blob": "a\x00b", "list": ["\x00"]}
    val = query(
        loc, "SELECT value_text, value_json, value_hash FROM task_values WHERE key_path = 'blob'"
    )[0]
    assert val[0] == "a\\u0000b" and unescape(as_json(val[1])) == "a\x00b"
    assert val[2] == value_hash("a\x00b")


def test_large_file_loads_in_chunks_and_replays_per_chunk(engine, tmp_path):
    kind, loc, target = engine
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(orjson.dumps(task(i)) + b"\n" for i in range(25)))
    stats = load(target, path, max_records=10)
    assert (stats.batches, stats.tasks) == (3, 25)
    with open(path, "ab") as fh:  # the run went on: only the new chunk loads
        fh.write(b"".join(orjson.dumps(task(i)) + b"\n" for i in range(25, 30)))
    again = load(target, path, max_records=10)
    # the grown last chunk: 5 tasks new, 5 stored before (merged), counted once each
    assert (again.batches, again.skipped, again.tasks, again.merged) == (1, 2, 5, 5)
    assert count(loc, "tasks") == 30 and count(loc, "task_values") == 180


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_same_task_twice_in_one_batch_is_one_row(engine, tmp_path, fmt):
    kind, loc, target = engine
    path = tmp_path / f"b.{fmt}"
    write_batch(str(path), [task(1, status="RUNNING", generated=None), task(1)], fmt, False)
    load(target, path)
    assert query(loc, "SELECT task_id, status FROM tasks") == [("0000000000000001-1", "FINISHED")]
    assert count(loc, "task_values") == 6 and count(loc, "task_telemetry") == 2


def test_batches_sharing_a_transaction_load_like_one_at_a_time(engine, tmp_path):
    kind, loc, target = engine
    paths = [
        write_jsonl(tmp_path / "1.jsonl", [workflow(), task(1, status="RUNNING"), task(2)]),
        write_jsonl(tmp_path / "2.jsonl", [task(1, generated={"z": 9}), task(3, tags=["a"])]),
        write_jsonl(tmp_path / "3.jsonl", [workflow(status="FINISHED"), task(1, tags=["b"])]),
    ]
    loader = Loader([target], group_records=1)
    loader.load_file(paths[0])  # the first batch is already in the ledger
    loader.close()
    stats = Loader([target], group_records=100).load_files(paths)
    assert (stats.batches, stats.skipped) == (2, 1)
    by_one = tmp_path / "one.duckdb"
    from provwh.warehouse.duck import DuckTarget

    Loader([DuckTarget(by_one)], group_records=1).load_files(paths)
    assert dump(loc)["tasks"] == dump(by_one)["tasks"]
    for table in ("workflows", "task_values", "task_telemetry", "task_tags", "task_edges"):
        assert dump(loc)[table] == dump(by_one)[table], table
    assert query(
        loc, "SELECT task_id, status, tags FROM tasks WHERE task_id = %s", ["0000000000000001-1"]
    )[0][:2] == ("0000000000000001-1", "FINISHED")
    assert query(
        loc,
        "SELECT key_path FROM task_values WHERE task_id = %s AND direction = 'generated'"
        " ORDER BY ordinal",
        ["0000000000000001-1"],
    ) == [("out",), ("y",), ("z",)]  # nested dicts merge
    assert count(loc, "batches") == 3


def test_a_file_of_big_records_is_cut_into_chunks_of_bounded_size(tmp_path, duck_path):
    """Chunks end at MAX_CHUNK_BYTES too: 30 records of 1 MiB load 8 at a time, not at once."""
    from provwh.warehouse.loader import Loader
    from provwh.warehouse.reader import MAX_CHUNK_BYTES, read_chunks

    big = "x" * (1 << 20)
    path = write_jsonl(tmp_path / "big.jsonl", [task(i, used={"blob": big}) for i in range(30)])
    chunks = list(read_chunks(path))
    assert MAX_CHUNK_BYTES == 8 << 20
    assert [len(c.lines) for c in chunks] == [8, 8, 8, 6]
    assert len({c.hash for c in chunks}) == 4
    from provwh.warehouse.duck import DuckTarget

    loader = Loader([DuckTarget(duck_path)], workers=0)
    stats = loader.load_files([path])
    loader.close()
    assert (stats.batches, stats.tasks) == (4, 30)
    assert query(duck_path, "SELECT count(*), min(length(value_text)) FROM task_values "
                 "WHERE key_path = 'blob'") == [(30, 1 << 20)]  # fmt: skip


def _analyzed(libpq: str) -> dict[str, tuple]:
    """Per table: (manual ANALYZE count, autoanalyze count, planner's row estimate)."""
    with psycopg.connect(libpq) as conn:
        rows = conn.execute(
            "SELECT s.relname, s.analyze_count, s.autoanalyze_count, c.reltuples::bigint"
            " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
            " WHERE s.relname IN ('tasks', 'task_values', 'task_edges')"
        ).fetchall()
    return {name: tuple(rest) for name, *rest in rows}


def test_loads_refresh_the_planner_statistics_of_the_tables_they_changed(pg_url, tmp_path):
    """PostgreSQL: ANALYZE after a pass that changed a table enough; small passes add up."""
    libpq = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as conn:  # only the loader may analyze
        for table in ("tasks", "task_values", "task_edges"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")

    def batch(name: str, first: int, n: int) -> str:
        recs = [
            {"type": "task", "task_id": f"t{i}", "workflow_id": "wf", "activity_id": f"a{i % 4}",
             "used": {"x": i, "path": f"/d/{i - 1}.bin"}, "generated": {"path": f"/d/{i}.bin"}}
            for i in range(first, first + n)
        ]  # fmt: skip
        path = tmp_path / f"{name}.jsonl"
        write_batch(path, recs, fsync=False)
        return str(path)

    assert _analyzed(libpq) == {n: (0, 0, -1) for n in ("tasks", "task_values", "task_edges")}
    loader = Loader([PgTarget(pg_url)], workers=0)
    try:
        loader.load_files([batch(f"big-{k}", k * 5_000, 5_000) for k in range(4)])
        assert _analyzed(libpq) == {
            "tasks": (1, 0, 20_000),
            "task_values": (1, 0, 60_000),
            "task_edges": (0, 0, -1),  # not written yet
        }
        loader.derive_lineage()  # a data edge from each task to the next
        assert _analyzed(libpq)["task_edges"] == (1, 0, 19_999)
        # a consumer's small passes: due once they add up to 1,000 + 10% of the estimate
        for k in range(3):
            loader.load_files([batch(f"small-{k}", 20_000 + k * 1_000, 1_000)])
            now = _analyzed(libpq)
            count = 1 if k < 2 else 2
            assert (now["tasks"][0], now["task_values"][0]) == (count, count), k
        assert _analyzed(libpq)["tasks"] == (2, 0, 23_000)
        assert _analyzed(libpq)["task_values"] == (2, 0, 69_000)
    finally:
        loader.close()


def test_lines_with_nan_and_infinity_literals_load_as_floats(engine, tmp_path):
    """Python's json module (Flowcept's files) writes NaN / Infinity: such lines load."""
    kind, loc, target = engine
    rec = {
        "task_id": "t1",
        "workflow_id": "wf",
        "activity_id": "fit",
        "used": {"lr": 0.1},
        "generated": {"loss": float("nan"), "best": float("-inf"), "hist": [float("inf")]},
    }
    path = tmp_path / "flowcept_buffer.jsonl"
    path.write_text(json.dumps(rec) + "\n" + '{"task_id": "t2", "used": {"x": nan}}\n')
    stats = load(target, str(path))
    assert (stats.tasks, stats.rejects) == (1, 1)  # `nan` is no literal of Python's json
    rows = query(loc, "SELECT key_path, value_type, value_num, value_json FROM task_values"
                      " ORDER BY key_path")  # fmt: skip
    assert repr([(*r[:3], as_json(r[3])) for r in rows]) == repr([
        ("best", "float", float("-inf"), None),
        ("hist", "list", None, [{"$float": "Infinity"}]),
        ("loss", "float", float("nan"), None),
        ("lr", "float", 0.1, None),
    ])  # fmt: skip
    assert as_json(query(loc, "SELECT generated FROM tasks")[0][0]) == {
        "loss": {"$float": "NaN"}, "best": {"$float": "-Infinity"},
        "hist": [{"$float": "Infinity"}],
    }  # fmt: skip


def test_loader_sessions_run_without_jit_and_query_sessions_as_the_server_says(pg_url):
    """PostgreSQL's JIT compiles plans it costs high, which the loader's statements are (a
    batch, every pending task) though they run in milliseconds: loaders turn it off; the
    query layer's sessions keep the server's own setting."""
    import psycopg

    from provwh.query.api import DBAPI
    from provwh.warehouse.migrate import libpq_url
    from provwh.warehouse.pg import PgTarget

    target = PgTarget(pg_url)
    try:
        assert target.connect().execute("SHOW jit").fetchone() == ("off",)
    finally:
        target.close()
    with psycopg.connect(libpq_url(pg_url)) as plain:
        server = plain.execute("SHOW jit").fetchone()[0]
    db = DBAPI.from_postgres(pg_url)
    try:
        assert db.sql_rows("SHOW jit") == (["jit"], [(server,)])
    finally:
        db.close()
