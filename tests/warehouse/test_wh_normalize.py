"""Normalization: records -> rows, without a database."""

from __future__ import annotations

import orjson
from warehouse_helpers import T0, task, telemetry, workflow

from provwh.warehouse import ids
from provwh.warehouse.escape import escape_nul, unescape
from provwh.warehouse.normalize import normalize_chunk, record_from_row
from provwh.warehouse.reader import Chunk, read_chunks
from provwh.warehouse.schema import task_telemetry, task_values, tasks
from provwh.warehouse.telemetry import GPU_COLUMNS, TELEMETRY_COLUMNS, telemetry_values
from provwh.warehouse.times import to_micros
from provwh.warehouse.values import (
    KEY_AND_VALUE,
    NEVER,
    VALUE_ONLY,
    match_hash,
    string_match,
    value_hash,
)

TASK_ROW = list(tasks.columns.keys())  # the record's columns, extra, loaded_at


def chunk(*records: dict | bytes) -> Chunk:
    lines = [(i, r if isinstance(r, bytes) else orjson.dumps(r)) for i, r in enumerate(records, 1)]
    return Chunk("test.jsonl", 0, "h", lines)


def test_task_rows_have_every_field_and_typed_children():
    norm = normalize_chunk(chunk(task(1, tags=["a", "b"], parent_task_id="p-1")))
    assert list(norm.tasks) == ["0000000000000001-1"]
    row = dict(zip(TASK_ROW, norm.rows.tasks[0], strict=True))
    assert row["loaded_at"] is None  # the engine sets it as it writes the row
    assert row["task_id"] == "0000000000000001-1"
    assert row["started_at"] == 1_700_000_001_000_000
    assert row["ended_at"] == 1_700_000_001_250_000
    assert orjson.loads(row["used"]) == task(1)["used"]
    assert row["extra"] is None
    values = [dict(zip(task_values.columns.keys(), r, strict=True)) for r in norm.rows.task_values]
    assert [(v["direction"], v["ordinal"], v["key_path"], v["leaf_key"]) for v in values] == [
        ("used", 0, "lr", "lr"),
        ("used", 1, "opts.epochs", "epochs"),
        ("used", 2, "path", "path"),
        ("used", 3, "x", "x"),
        ("generated", 0, "out", "out"),
        ("generated", 1, "y", "y"),
    ]
    assert (
        values[2]["value_text"] == "/data/in_1.csv"
        and values[2]["match_hash"] == values[2]["value_hash"]
    )
    assert values[3]["value_num"] == 1.0 and values[3]["match_hash"] is None
    assert values[1]["value_type"] == "int" and values[1]["value_hash"] == value_hash(3)
    assert values[1]["match_hash"] == match_hash("epochs", 3) != match_hash("other", 3)
    assert [
        v["match_hash"] == match_hash(v["leaf_key"], task(1)[v["direction"]].get(v["leaf_key"], 3))
        for v in values
    ] == [True] * 6
    assert all(v["task_started_at"] == 1_700_000_001_000_000 for v in values)
    assert norm.rows.task_tags == [("0000000000000001-1", "a"), ("0000000000000001-1", "b")]
    assert norm.rows.task_edges == [("p-1", "0000000000000001-1", "parent")]
    tel = [
        dict(zip(task_telemetry.columns.keys(), r, strict=True)) for r in norm.rows.task_telemetry
    ]
    assert [(t["phase"], t["cpu_user"], t["mem_used"], t["proc_rss"]) for t in tel] == [
        ("start", 11.0, 3001, 1001),
        ("end", 12.0, 3002, 1002),
    ]


def test_telemetry_columns_cover_a_full_snapshot():
    snap = telemetry(0)
    snap["disk"]["io_sum"].update(read_count=1, write_count=2)
    snap["network"]["netio_sum"].update(packets_sent=3, packets_recv=4)
    snap["process"].update(memory_percent=1.5, num_open_file_descriptors=9)
    snap["cpu"]["times_avg"]["iowait"] = 0.5
    snap["memory"]["swap"]["percent"] = 0.0
    snap["gpu"] = {
        "gpu_0": {
            "used": 10,
            "total": 100,
            "utilization": {"gpu": 50},
            "temperature": 60,
            "power_usage": 1000,
        },
        "gpu_1": {
            "used": 30,
            "total": 100,
            "utilization": {"gpu": 70},
            "temperature": 65,
            "power_usage": 3000,
        },
    }
    snap["sensors"] = {"fan": 1}
    values, gpu, extra = telemetry_values(snap)
    assert len(values) == len(TELEMETRY_COLUMNS) + len(GPU_COLUMNS)
    assert None not in values
    assert dict(zip(GPU_COLUMNS, values[len(TELEMETRY_COLUMNS) :], strict=True)) == {
        "gpu_count": 2,
        "gpu_memory_used": 40,
        "gpu_memory_total": 200,
        "gpu_utilization": 60.0,
        "gpu_temperature": 65.0,
        "gpu_power_usage": 4000.0,
    }
    assert gpu == snap["gpu"] and extra == {"sensors": {"fan": 1}}


def test_parts_of_one_task_and_workflow_merge_in_a_batch():
    first = {"type": "task", "task_id": "t1", "used": {"a": 1}, "status": "RUNNING"}
    second = {
        "type": "task",
        "task_id": "t1",
        "used": {"b": 2},
        "status": "FINISHED",
        "ended_at": T0,
        "activity_id": None,
    }
    wf_end = {"type": "workflow", "workflow_id": "wf-1", "ended_at": T0 + 9, "status": "FINISHED"}
    norm = normalize_chunk(chunk(first, workflow(), second, wf_end))
    assert list(norm.tasks) == ["t1"] and list(norm.workflows) == ["wf-1"]
    assert norm.tasks["t1"]["used"] == {"a": 1, "b": 2}
    assert norm.tasks["t1"]["status"] == "FINISHED"
    assert len(norm.rows.tasks) == 1 and len(norm.rows.task_values) == 2
    wf = norm.workflows["wf-1"]
    assert (wf["name"], wf["status"], wf["ended_at"]) == ("demo", "FINISHED", T0 + 9)


def test_records_without_type_or_ids_get_stable_ids():
    light = {"activity_id": "f", "used": {"x": 1}}  # Flowcept lightweight: no type, no id
    wf = {"workflow_id": None, "name": "legacy", "flowcept_version": "0.8"}
    records = [light, light, {"activity_id": "g", "generated": {"y": 2}}, wf]
    first = normalize_chunk(chunk(*records))
    again = normalize_chunk(chunk(*records))
    assert list(first.tasks) == list(again.tasks)
    assert len(first.tasks) == 3  # identical records stay two tasks
    assert list(first.workflows) == list(again.workflows) and len(first.workflows) == 1
    tid = list(first.tasks)[0]
    assert len(tid) == 36 and tid[14] == "5"  # a UUIDv5
    assert first.rejects == []


def test_record_kind_inference():
    assert ids.record_kind({"type": "task"}) == "task"
    assert ids.record_kind({"task_id": "1", "workflow_id": "w"}) == "task"
    assert ids.record_kind({"workflow_id": "w", "name": "n"}) == "workflow"
    assert ids.record_kind({"object_id": "o", "type": "ml_model"}) == "object"
    assert ids.record_kind({"workflow_id": "w", "used": {}}) == "task"
    assert ids.record_kind({"type": "control"}) is None
    assert ids.record_kind({"foo": 1}) is None


def test_bad_lines_and_records_are_rejected_with_reasons():
    norm = normalize_chunk(
        chunk(
            task(1),
            b"{not json",
            b"[1, 2]",
            {"type": "control"},
            {"foo": 1},
            {"type": "task", "task_id": {"a": 1}},
            task(2),
        )
    )
    assert sorted(norm.tasks) == ["0000000000000001-1", "0000000000000002-2"]
    reasons = {r.lineno: r.reason for r in norm.rejects}
    assert sorted(reasons) == [2, 3, 4, 5, 6]
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3] == "not a JSON object: list"
    assert reasons[4] == "unsupported record type 'control'"
    assert reasons[5].startswith("cannot tell the record type")
    assert reasons[6] == "task_id must be a non-empty string, got dict"
    assert norm.rejects[0].raw == "{not json"


def test_nul_characters_are_escaped_and_recoverable():
    rec = {
        "type": "task",
        "task_id": "t-nul",
        "activity_id": "a\x00b",
        "used": {"s": "x\x00y\\z", "deep": {"k\x00": "v"}},
    }
    norm = normalize_chunk(chunk(rec))
    row = dict(zip(TASK_ROW, norm.rows.tasks[0], strict=True))
    assert "\x00" not in repr(norm.rows.tasks[0]) and "\x00" not in repr(norm.rows.task_values)
    assert row["activity_id"] == "a\\u0000b"
    extra = orjson.loads(row["extra"])
    assert unescape(extra["activity_id"]) == "a\x00b"
    used = orjson.loads(row["used"])
    assert unescape(used["s"]) == "x\x00y\\z"
    assert used["deep"] == {"k\\u0000": "v"}
    s_row = next(r for r in norm.rows.task_values if r[3] == "s")
    assert s_row[5:7] == ("str", "x\\u0000y\\\\z")
    assert unescape(orjson.loads(s_row[9])) == "x\x00y\\z"
    assert s_row[10] == value_hash("x\x00y\\z")
    assert escape_nul({"a": ["\x00"]}) == {"a": [{"$nul": "\\u0000"}]}


def test_value_hash_and_match_hash():
    assert value_hash(1) == value_hash(1.0) != value_hash(True)
    assert value_hash("1") != value_hash(1)
    assert value_hash({"a": 1, "b": 2}) == value_hash({"b": 2, "a": 1})
    assert 0 <= value_hash("x") < 2**60
    assert match_hash("path", "/d/f.csv") == match_hash("data_path", "/d/f.csv")
    assert match_hash("lr", 0.5) != match_hash("alpha", 0.5)
    assert [match_hash("k", v) for v in (None, True, 0, 1.0, -1, "a", [], {})] == [None] * 8
    assert [string_match(s) for s in ("a", "ab", "/x", "out.csv", "run-0a1b2c3d", "hello")] == [
        NEVER,
        KEY_AND_VALUE,
        VALUE_ONLY,
        VALUE_ONLY,
        VALUE_ONLY,
        KEY_AND_VALUE,
    ]


def test_times():
    assert to_micros(1.5) == 1_500_000
    assert to_micros("2024-01-01T00:00:00Z") == 1_704_067_200_000_000
    assert to_micros("2024-01-01T01:00:00+01:00") == 1_704_067_200_000_000
    assert to_micros("1.25") == 1_250_000
    assert to_micros("yesterday") is None and to_micros(True) is None
    assert to_micros(1.7e12) is None  # milliseconds are refused, not misread


def test_unparsable_and_misfit_values_go_to_extra():
    rec = {"type": "task", "task_id": "t", "started_at": "soon", "status": ["odd"], "zz": 1}
    norm = normalize_chunk(chunk(rec))
    row = norm.rows.tasks[0]
    assert orjson.loads(row[TASK_ROW.index("extra")]) == {
        "started_at": "soon",
        "status": ["odd"],
        "zz": 1,
    }
    back = record_from_row("task", dict(zip(TASK_ROW, row, strict=True)))
    assert back == {
        "type": "task",
        "task_id": "t",
        "started_at": "soon",
        "status": ["odd"],
        "zz": 1,
    }


def test_big_files_are_cut_into_chunks(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(orjson.dumps(task(i)) + b"\n" for i in range(25)))
    chunks = list(read_chunks(path, max_records=10))
    assert [len(c.lines) for c in chunks] == [10, 10, 5]
    assert [c.lines[0][0] for c in chunks] == [1, 11, 21]
    assert len({c.hash for c in chunks}) == 3
    assert [c.hash for c in read_chunks(path, max_records=10)] == [c.hash for c in chunks]


def test_id_columns_are_the_indexed_text_columns():
    """``ID_COLUMNS`` (long ids as digest keys) names every text column a btree of the record
    tables indexes: a long value elsewhere in their keys could not be stored."""
    from sqlalchemy import Text

    from provwh.warehouse.schema import ID_COLUMNS, metadata

    for name, columns in ID_COLUMNS.items():
        table = metadata.tables[name]
        indexed = {c.name for c in table.primary_key.columns}
        for index in table.indexes:
            indexed |= {c.name for c in index.columns}
        texts = {c for c in indexed if isinstance(table.columns[c].type, Text)}
        assert texts == set(columns), name


def test_long_ids_are_stored_as_digest_keys_no_stored_string_equals():
    """An id over 1,000 bytes: its digest key in the columns, edges and tags, the id in
    ``extra``; no string is stored as a digest key, and the record comes back whole."""
    import hashlib

    from provwh.warehouse.escape import DIGEST_PREFIX, escape_text, id_key, stored_id
    from provwh.warehouse.schema import workflows

    def key(text):
        return "\\u0000\\#sha256:" + hashlib.sha256(text.encode()).hexdigest()

    long, parent, tag, dep, act, wf = ("é" * 500 + c for c in "abcdef")
    assert stored_id("é" * 500) == "é" * 500 and stored_id(long) == key(long) == id_key(long)
    nul = "\x00" + "x" * 1000
    assert stored_id(nul) == key(escape_text(nul)) and DIGEST_PREFIX == key("")[:-64]
    for text in (key(long), key(long)[1:], "\\" + key(long), DIGEST_PREFIX, key(long) + "\x00"):
        assert stored_id(text) != key(long) and not stored_id(text).startswith(DIGEST_PREFIX)
    rec = task(1, task_id=long, activity_id=act, parent_task_id=parent, tags=[tag, 7],
               dependencies=[dep], workflow_id=wf)  # fmt: skip
    norm = normalize_chunk(chunk(rec, workflow(wf, campaign_id=act)))
    assert list(norm.tasks) == [key(long)] and list(norm.workflows) == [key(wf)]
    row = dict(zip(TASK_ROW, norm.rows.tasks[0], strict=True))
    assert (row["task_id"], row["activity_id"], row["parent_task_id"], row["workflow_id"]) == (
        key(long), key(act), key(parent), key(wf),
    )  # fmt: skip
    assert orjson.loads(row["extra"]) == {
        "task_id": long, "workflow_id": wf, "activity_id": act, "parent_task_id": parent,
    }  # fmt: skip
    assert orjson.loads(row["tags"]) == [tag, 7]  # documents keep the ids whole
    assert sorted(norm.rows.task_tags) == sorted([(key(long), key(tag)), (key(long), "7")])
    assert sorted(norm.rows.task_edges) == sorted(
        [(key(parent), key(long), "parent"), (key(dep), key(long), "dependency")]
    )
    assert {r[0] for r in norm.rows.task_values} == {key(long)}
    untimed = {**row, "started_at": None, "ended_at": None}  # (times are read as datetimes)
    assert record_from_row(ids.TASK, untimed) == {
        k: v for k, v in rec.items() if k not in ("started_at", "ended_at")
    }
    wf_row = dict(zip(workflows.columns.keys(), norm.rows.workflows[0], strict=True))
    assert (wf_row["workflow_id"], wf_row["campaign_id"]) == (key(wf), key(act))
    wf_row["started_at"] = None
    back = record_from_row(ids.WORKFLOW, wf_row)
    assert back == {k: v for k, v in workflow(wf, campaign_id=act).items() if k != "started_at"}
