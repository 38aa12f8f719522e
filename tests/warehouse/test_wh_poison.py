"""Poison records: one record must never stop a batch, a load or a consumer.

A record nested deeper than orjson writes, a value PostgreSQL cannot index, a record the
database refuses: each is set aside as a reject (its line and the reason), and the rest of its
batch loads, exactly once, on both engines. Errors retrying cannot fix fail at once.
"""

from __future__ import annotations

import os
import re

import orjson
import pytest
from warehouse_helpers import count, query, task, wait_for, workflow, write_jsonl, write_lines

from provwh.cli import main
from provwh.core.config import load_settings
from provwh.transport.spool import CLAIMED, DONE, REJECTED, SpoolWriter
from provwh.warehouse import loader as loader_mod
from provwh.warehouse.consumer import SpoolConsumer
from provwh.warehouse.loader import Loader
from provwh.warehouse.pg import PgTarget

DEEP_REASON = "record nested too deep: more than 254 levels of dicts and lists cannot be stored"


def load(target, *paths, **kw):
    loader = Loader([target], **kw)
    try:
        return loader.load_files(list(paths))
    finally:
        loader.close()


def deep_line(i: int, depth: int = 1000) -> bytes:
    """Task ``i`` with ``used.deep`` nested ``depth`` dicts deep (orjson reads up to 1024)."""
    nested = b'{"a":' * depth + b"{}" + b"}" * depth
    line = orjson.dumps(task(i)).replace(b'"used":{', b'"used":{"deep":' + nested + b",", 1)
    assert orjson.loads(line)["used"]["deep"]["a"]["a"] is not None
    return line


def nested(depth: int) -> dict:
    d: dict = {}
    for _ in range(depth):
        d = {"a": d}
    return d


def task_ids(loc) -> list[str]:
    return [r[0] for r in query(loc, "SELECT task_id FROM tasks ORDER BY task_id")]


def settings_for(duck_path=None, pg_url=None):
    env = {"PROVWH_DUCKDB_ENABLED": "true" if duck_path else "false"}
    if duck_path:
        env["PROVWH_DUCKDB_PATH"] = str(duck_path)
    if pg_url:
        env["PROVWH_POSTGRES_URL"] = pg_url
    return load_settings(env=env)


# --- item 4: deep nesting ----------------------------------------------------------------------


def test_a_record_nested_1000_deep_is_rejected_and_the_rest_loads(engine, tmp_path):
    kind, loc, target = engine
    path = write_lines(
        tmp_path / "b.jsonl",
        [orjson.dumps(task(1)), deep_line(2), orjson.dumps(task(3)), orjson.dumps(workflow())],
    )
    stats = load(target, path, workers=0)
    assert (stats.batches, stats.records, stats.tasks, stats.workflows, stats.rejects) == (
        1, 4, 2, 1, 1,
    )  # fmt: skip
    assert task_ids(loc) == [task(1)["task_id"], task(3)["task_id"]]
    rejects = query(loc, "SELECT lineno, source, reason, raw FROM rejects")
    assert [r[:3] for r in rejects] == [(2, "b.jsonl", DEEP_REASON)]
    assert rejects[0][3] == deep_line(2).decode()[:10_000]
    assert query(loc, "SELECT records, rejects FROM batches") == [(4, 1)]


def test_a_record_as_deep_as_orjson_writes_loads_whole(engine, tmp_path):
    """250 levels below ``used.deep``: stored, and read back equal."""
    kind, loc, target = engine
    rec = task(1, used={"deep": nested(250)})
    stats = load(target, write_jsonl(tmp_path / "b.jsonl", [rec]), workers=0)
    assert (stats.tasks, stats.rejects) == (1, 0)
    (used,) = query(loc, "SELECT used FROM tasks")[0]
    assert (orjson.loads(used) if isinstance(used, str) else used) == {"deep": nested(250)}


def test_deep_records_in_files_sharing_a_duckdb_transaction(tmp_path, duck_path):
    """Three files in one grouped transaction: all load, the deep line alone set aside."""
    from provwh.warehouse.duck import DuckTarget

    paths = [
        write_jsonl(tmp_path / "1.jsonl", [task(1)]),
        write_lines(tmp_path / "2.jsonl", [orjson.dumps(task(2)), deep_line(3, depth=300)]),
        write_jsonl(tmp_path / "3.jsonl", [task(4)]),
    ]
    stats = load(DuckTarget(duck_path), *paths, workers=0)
    assert (stats.files, stats.batches, stats.tasks, stats.rejects) == (3, 3, 3, 1)
    assert task_ids(duck_path) == [task(i)["task_id"] for i in (1, 2, 4)]
    assert query(duck_path, "SELECT source, lineno, reason FROM rejects") == [
        ("2.jsonl", 2, DEEP_REASON)
    ]


def test_deep_record_through_worker_processes(pg_url, tmp_path, monkeypatch):
    monkeypatch.setattr(loader_mod, "WORKER_MIN_BYTES", 0)
    path = write_lines(tmp_path / "b.jsonl", [orjson.dumps(task(1)), deep_line(2)])
    target = PgTarget(pg_url)
    stats = load(target, path, workers=1)
    assert (stats.tasks, stats.rejects) == (1, 1)
    assert query(pg_url, "SELECT lineno, reason FROM rejects") == [(2, DEEP_REASON)]
    assert task_ids(pg_url) == [task(1)["task_id"]]


def test_cli_load_of_a_deep_record_exits_0_and_writes_the_reject(capsys, tmp_path, duck_path):
    path = write_lines(tmp_path / "b.jsonl", [deep_line(1), orjson.dumps(task(2))])
    rc = main(["load", path, "--duckdb", duck_path, "--rejects-files"])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    assert re.match(r"loaded 1 batch: \d+ rows \(1 task, 0 workflows\), 1 reject in", out.strip())
    (line,) = (tmp_path / "b.jsonl.rejects.jsonl").read_bytes().splitlines()
    got = orjson.loads(line)
    assert (got["source"], got["lineno"], got["reason"]) == ("b.jsonl", 1, DEEP_REASON)


def _deep_spool(tmp_path):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "run", "jsonl", fsync=False)
    good = writer.write([task(1)])
    name = writer.write([task(2)])  # then made poison: a deep line between two good ones
    path = spool / name
    path.write_bytes(orjson.dumps(task(2)) + b"\n" + deep_line(3) + b"\n" + orjson.dumps(task(4)))
    return spool, good, name


def test_consume_once_sets_aside_the_deep_line_only(capsys, tmp_path, duck_path):
    spool, good, name = _deep_spool(tmp_path)
    rc = main(["consume", "--spool", str(spool), "--once", "--duckdb", duck_path])
    out, _ = capsys.readouterr()
    assert rc == 0 and "(3 tasks, 0 workflows), 1 reject" in out
    assert sorted(os.listdir(spool / DONE)) == sorted([good, name])
    assert os.listdir(spool / CLAIMED) == []
    assert os.listdir(spool / REJECTED) == [f"{name}.rejects.jsonl"]
    got = orjson.loads((spool / REJECTED / f"{name}.rejects.jsonl").read_bytes())
    assert (got["source"], got["lineno"], got["reason"]) == (name, 2, DEEP_REASON)
    assert query(duck_path, "SELECT source, lineno, reason FROM rejects") == [
        (name, 2, DEEP_REASON)
    ]
    assert task_ids(duck_path) == [task(i)["task_id"] for i in (1, 2, 4)]


def test_following_consumer_sets_aside_the_deep_line_only(tmp_path, pg_url):
    spool, good, name = _deep_spool(tmp_path)
    consumer = SpoolConsumer(spool, settings_for(None, pg_url), poll_interval=0.02).start()
    try:
        assert wait_for(lambda: len(os.listdir(spool / DONE)) == 2)
    finally:
        stats = consumer.stop(drain=True)
    assert (stats.batches, stats.tasks, stats.rejects, consumer.errors) == (2, 3, 1, 0)
    assert query(pg_url, "SELECT source, lineno, reason FROM rejects") == [(name, 2, DEEP_REASON)]
    assert task_ids(pg_url) == [task(i)["task_id"] for i in (1, 2, 4)]
    assert os.listdir(spool / REJECTED) == [f"{name}.rejects.jsonl"]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_capture_of_a_function_returning_a_1000_deep_dict(tmp_path, monkeypatch, set_env, fmt):
    """The user's call returns its value; the record is stored with the part beyond 64
    levels replaced by a placeholder string, and the next task is captured as usual."""
    from provwh import Flowcept, flowcept_task

    monkeypatch.chdir(tmp_path)
    duck = str(tmp_path / "w.duckdb")
    set_env(PROVWH_DUCKDB_PATH=duck, PROVWH_BUFFER_FORMAT=fmt, PROVWH_SPOOL_DIR="spool")

    made = []

    @flowcept_task
    def make_deep(n):
        made.append(nested(n))
        return made[-1]

    @flowcept_task
    def after(x):
        return {"y": x}

    with Flowcept(workflow_name="deep"):
        value = make_deep(1000)
        after(1)
    assert value is made[0]
    rows = query(duck, "SELECT activity_id, generated FROM tasks ORDER BY activity_id")
    assert [r[0] for r in rows] == ["after", "make_deep"]
    assert orjson.loads(rows[0][1]) == {"y": 1}
    stored = orjson.loads(rows[1][1])
    level = 0
    while isinstance(stored, dict):
        stored = stored["a"]
        level += 1
    assert (level, stored.startswith("dict_instance_id_")) == (64, True)
    assert count(duck, "rejects") == 0
