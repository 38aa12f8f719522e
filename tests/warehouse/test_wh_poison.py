"""Poison records: one record must never stop a batch, a load or a consumer.

A record nested deeper than orjson writes, a value PostgreSQL cannot index (in an index of the
DBA's: provwh's own take ids and keys of any length), a record the database refuses: each is
set aside as a reject (its line and the reason), and the rest of its batch loads, exactly
once, on both engines. Errors retrying cannot fix fail at once.
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
        write_lines(tmp_path / "2.jsonl", [orjson.dumps(task(2)), deep_line(3)]),
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


# --- item 1: what PostgreSQL cannot index, and errors retrying cannot fix ----------------------


def big(seed: int, size: int = 10_000) -> str:
    """``size`` characters that do not compress (PostgreSQL compresses long index rows)."""
    import hashlib

    out, block = [], str(seed).encode()
    while sum(map(len, out)) < size:
        block = hashlib.sha256(block).hexdigest().encode()
        out.append(block.decode())
    return "".join(out)[:size]


def test_10kb_key_paths_and_values_load_and_query_back_exactly(engine, tmp_path):
    """Keys longer than a btree row load on both engines (0004 indexes the short ones only),
    and queries on them find exactly their tasks."""
    from provwh.query.api import DBAPI

    kind, loc, target = engine
    key, text, nested_key = big(1), big(2), big(3)
    rec = task(1, used={key: 2.5, "s": text}, generated={"n": {nested_key: "v"}})
    stats = load(target, write_jsonl(tmp_path / "b.jsonl", [rec, task(2)]), workers=0)
    assert (stats.tasks, stats.rejects) == (2, 0)
    assert query(
        loc,
        "SELECT direction, key_path, leaf_key, value_num, value_text FROM task_values"
        " WHERE task_id = %s AND (length(key_path) > 600 OR value_text = %s)"
        " ORDER BY direction, ordinal",
        [rec["task_id"], text],
    ) == [
        ("generated", f"n.{nested_key}", nested_key, None, "v"),
        ("used", key, key, 2.5, None),
        ("used", "s", "s", None, text),
    ]
    db = DBAPI.from_duckdb(loc) if kind == "duckdb" else DBAPI.from_postgres(loc)
    try:
        for flt in (
            {f"used.{key}": 2.5},
            {f"used.{key}": {"$gt": 2}},
            {"used.s": text},
            {f"generated.n.{nested_key}": "v"},
        ):
            found = db.task_query(flt)
            assert [t["task_id"] for t in found] == [rec["task_id"]], flt
        assert db.task_query({f"used.{key}": {"$gt": 3}}) == []
        (back,) = db.task_query({"task_id": rec["task_id"]})
        assert (back["used"], back["generated"]) == (rec["used"], rec["generated"])
    finally:
        db.close()


def test_queries_on_short_key_paths_still_use_the_index(pg_url, tmp_path):
    """``used.x > v``: an index scan of (key_path, value_num), as before 0004."""
    import psycopg

    from provwh.query import paths
    from provwh.query.api import DBAPI
    from provwh.query.filters import FilterCompiler
    from provwh.query.frag import render, sql

    recs = [task(i) for i in range(3000)] + [task(5000, used={big(4): 1})]
    load(PgTarget(pg_url), write_jsonl(tmp_path / "b.jsonl", recs), workers=0)
    db = DBAPI.from_postgres(pg_url)
    try:
        assert len(db.task_query({"used.x": {"$gt": 2990}})) == 9
        comp = FilterCompiler(paths.collection("tasks"), db.backend.dialect)
        text, params = render(
            sql(
                "EXPLAIN SELECT t.task_id FROM tasks t WHERE {}", comp.where({"used.x": {"$gt": 5}})
            ),
            "%s",
        )
    finally:
        db.close()
    with psycopg.connect(pg_url.replace("+psycopg", "")) as conn:
        plan = "\n".join(r[0] for r in conn.execute(text, params))
    assert "ix_task_values_key_path_value_num" in plan, plan


def _poison_batch(tmp_path):
    """Records no PostgreSQL btree took whole, before long ids were stored as digest keys: a
    10 KB task id, a task with a 10 KB activity id, a workflow with a 10 KB id, and a task
    whose parent is the 10 KB task, with a 10 KB tag and a 10 KB dependency; and a short id
    whose text is a digest key (the 10 KB task's, stored escaped, so apart from it)."""
    recs = [
        task(1),
        task(2, task_id=big(5)),
        task(3),
        task(4, activity_id=big(6)),
        workflow("wf-1"),
        workflow(big(7)),
        task(5, parent_task_id=big(5), tags=[big(11), "t"], dependencies=[big(12)]),
        task(6, task_id=_digest_key(big(5))),
    ]
    return write_jsonl(tmp_path / "b.jsonl", recs), recs


def _digest_key(text: str) -> str:
    """What an id column holds for a long id (warehouse.escape)."""
    import hashlib

    return "\\u0000\\#sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_records_with_10kb_ids_load_whole_on_both_engines(engine, tmp_path):
    """Ids of any length load (an id column holds a long one's digest key, the id in the
    row's ``extra``), and the query API finds them and gives them back whole."""
    import time

    from provwh.query.api import DBAPI

    kind, loc, target = engine
    path, recs = _poison_batch(tmp_path)
    t0 = time.perf_counter()
    stats = load(target, path, workers=0)
    took = time.perf_counter() - t0
    assert (stats.batches, stats.records, stats.tasks, stats.workflows, stats.rejects) == (
        1, 8, 6, 2, 0,
    )  # fmt: skip
    assert took < 10, took  # no record probed
    assert count(loc, "rejects") == 0 and count(loc, "task_values") == 36
    long_task, long_act, long_wf = big(5), big(6), big(7)
    child, lookalike = task(5)["task_id"], _digest_key(long_task)
    stored = task_ids(loc)  # the 10 KB id's digest key, and apart, the lookalike escaped
    assert lookalike in stored and lookalike.replace("\\", "\\\\") in stored
    assert len(stored) == 6 and max(len(t) for t in stored) < 100
    db = DBAPI.from_duckdb(loc) if kind == "duckdb" else DBAPI.from_postgres(loc)
    try:
        every = db.task_query({})
        assert sorted(t["task_id"] for t in every) == sorted(
            r["task_id"] for r in recs if r["type"] == "task"
        )
        (got,) = db.task_query({"task_id": long_task})
        assert (got["task_id"], got["activity_id"]) == (long_task, "train")
        assert [t["task_id"] for t in db.task_query({"task_id": lookalike})] == [lookalike]
        (by_act,) = db.task_query({"activity_id": long_act})
        assert (by_act["task_id"], by_act["activity_id"]) == (task(4)["task_id"], long_act)
        (wf,) = db.workflow_query({"workflow_id": long_wf})
        assert wf["workflow_id"] == long_wf
        assert [w["workflow_id"] for w in db.workflow_query({})] == sorted(["wf-1", long_wf])
        (kid,) = db.task_query({"parent_task_id": long_task})
        assert (kid["task_id"], kid["parent_task_id"], kid["tags"]) == (
            child, long_task, [big(11), "t"],
        )  # fmt: skip
        assert [t["task_id"] for t in db.task_query({"tags": big(11)})] == [child]
        up = db.get_upstream(child, kinds=["parent", "explicit"])
        assert sorted(r["task_id"] for r in up) == sorted([long_task, big(12)])
        assert [r["task_id"] for r in db.get_downstream(long_task, kinds="parent")] == [child]
        edges = db.lineage_graph(task_id=child, depth=1, kinds=["parent", "explicit"])["edges"]
        assert sorted((e["src"], e["kind"]) for e in edges) == sorted(
            [(long_task, "parent"), (big(12), "explicit")]
        )
        assert all(e["dst"] == child for e in edges)
        # loaded again: the ledger knows it, nothing changes
        before = {t: count(loc, t) for t in ("tasks", "workflows", "task_edges", "task_tags")}
        again = load(target, path, workers=0)
        assert (again.batches, again.skipped, again.rejects) == (0, 1, 0)
        assert {t: count(loc, t) for t in before} == before
        assert db.task_query({"task_id": long_task}) == [got]
    finally:
        db.close()


def _dba_indexes(pg_url):
    """Indexes a DBA added on columns provwh does not index: a 10 KB subtype breaks them."""
    import psycopg

    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE INDEX dba_task_subtype ON tasks (subtype)")
        conn.execute("CREATE INDEX dba_workflow_subtype ON workflows (subtype)")


def _refused_batch(tmp_path):
    """Three good records and three the DBA's indexes refuse (``_dba_indexes``)."""
    recs = [
        task(1),
        task(2, subtype=big(5)),
        task(3),
        task(4, subtype=big(6)),
        workflow("wf-1"),
        workflow("wf-2", subtype=big(7)),
    ]
    return write_jsonl(tmp_path / "b.jsonl", recs), recs


def test_records_postgresql_cannot_index_are_rejects_and_the_rest_loads(pg_url, tmp_path):
    import time

    _dba_indexes(pg_url)
    path, recs = _refused_batch(tmp_path)
    t0 = time.perf_counter()
    stats = load(PgTarget(pg_url), path, workers=0)
    took = time.perf_counter() - t0
    assert (stats.batches, stats.records, stats.tasks, stats.workflows, stats.rejects) == (
        1, 6, 2, 1, 3,
    )  # fmt: skip
    assert took < 10, took  # isolated at once, no retrying
    assert task_ids(pg_url) == [task(1)["task_id"], task(3)["task_id"]]
    assert query(pg_url, "SELECT workflow_id FROM workflows") == [("wf-1",)]
    rejects = query(pg_url, "SELECT lineno, source, reason, raw FROM rejects ORDER BY lineno")
    assert [(r[0], r[1]) for r in rejects] == [(2, "b.jsonl"), (4, "b.jsonl"), (6, "b.jsonl")]
    pattern = (
        r"PostgreSQL postgresql://\S+ refused the record: (ProgramLimitExceeded|OperationalError):"
        r" index row (size \d+ exceeds btree version 4 maximum 2704 for index \"{}\"|requires \d+"
        r" bytes, maximum size is 8191)"
    )
    for (lineno, _s, reason, raw), index in zip(
        rejects, ["dba_task_subtype", "dba_task_subtype", "dba_workflow_subtype"], strict=True
    ):
        assert re.fullmatch(pattern.replace("{}", index), reason), reason
        assert raw == orjson.dumps(recs[lineno - 1]).decode()[:10_000]
    assert query(pg_url, "SELECT records, rejects FROM batches") == [(6, 3)]
    assert count(pg_url, "task_values") == 12  # the two good tasks' rows, nothing else
    # replayed: the ledger knows it, nothing written twice
    again = load(PgTarget(pg_url), path, workers=0)
    assert (again.batches, again.skipped, count(pg_url, "rejects")) == (0, 1, 3)


def test_refused_records_through_worker_processes(pg_url, tmp_path, monkeypatch):
    """A chunk encoded by a worker is parsed again here to find the refused record."""
    monkeypatch.setattr(loader_mod, "WORKER_MIN_BYTES", 0)
    _dba_indexes(pg_url)
    path, _ = _refused_batch(tmp_path)
    stats = load(PgTarget(pg_url), path, workers=1)
    assert (stats.tasks, stats.workflows, stats.rejects) == (2, 1, 3)
    assert [r[0] for r in query(pg_url, "SELECT lineno FROM rejects ORDER BY 1")] == [2, 4, 6]


def test_consumer_into_both_engines_sets_aside_what_postgresql_refuses(tmp_path, duck_path, pg_url):
    _dba_indexes(pg_url)
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "run", "jsonl", fsync=False)
    name = writer.write([task(1), task(2, subtype=big(8)), task(3)])
    consumer = SpoolConsumer(spool, settings_for(duck_path, pg_url))
    stats = consumer.load_pending()
    consumer.stop()
    assert (stats.batches, stats.tasks, stats.rejects, consumer.errors) == (1, 3, 1, 0)
    assert os.listdir(spool / DONE) == [name]
    assert count(duck_path, "tasks") == 3 and count(duck_path, "rejects") == 0
    assert count(pg_url, "tasks") == 2
    assert query(pg_url, "SELECT lineno FROM rejects") == [(2,)]
    (line,) = (spool / REJECTED / f"{name}.rejects.jsonl").read_bytes().splitlines()
    got = orjson.loads(line)
    assert (got["lineno"], got["reason"].split(" refused")[0]) == (2, PgTarget(pg_url).name)
    assert orjson.loads(got["raw"]) == task(2, subtype=big(8))  # whole: it can be loaded again


def test_a_unique_index_of_the_dba_rejects_the_record_that_breaks_it(pg_url, tmp_path):
    """A unique violation is retried as a race a few times, then set aside as the data's."""
    import psycopg

    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE UNIQUE INDEX dba_unique_activity ON tasks (activity_id)")
        conn.execute("INSERT INTO tasks (task_id, activity_id) VALUES ('stored', 'taken')")
    path = write_jsonl(tmp_path / "b.jsonl", [task(1, activity_id="taken"), task(2)])
    stats = load(PgTarget(pg_url), path, workers=0)
    assert (stats.tasks, stats.rejects) == (1, 1)
    ((lineno, reason),) = query(pg_url, "SELECT lineno, reason FROM rejects")
    assert lineno == 1 and reason.endswith(
        'UniqueViolation: duplicate key value violates unique constraint "dba_unique_activity"'
    )


def test_a_batch_whose_every_record_is_refused_fails_as_a_batch(capsys, pg_url, tmp_path):
    """Every record refused is the database's doing, not the records': nothing is set aside
    record by record, and ``provwh load`` stops naming the file."""
    _dba_indexes(pg_url)
    path = write_jsonl(tmp_path / "b.jsonl", [task(1, subtype=big(9)), task(2, subtype=big(10))])
    rc = main(["load", path, "--postgres", pg_url])
    out, err = capsys.readouterr()
    assert (rc, out) == (1, "")
    assert err.startswith(f"provwh: error: {path}: ProgramLimitExceeded: index row ") or (
        err.startswith(f"provwh: error: {path}: OperationalError: index row ")
    ), err
    assert count(pg_url, "tasks") == 0 and count(pg_url, "batches") == 0


def _missing_db(pg_url: str) -> str:
    return pg_url.rsplit("/", 1)[0] + "/provwh_no_such_db"


def test_a_wrong_database_name_fails_at_once(capsys, pg_url, tmp_path):
    import time

    from provwh.warehouse.errors import CannotConnect
    from provwh.warehouse.loader import RetryPolicy

    path = write_jsonl(tmp_path / "b.jsonl", [task(1)])
    t0 = time.monotonic()
    with pytest.raises(CannotConnect, match='database "provwh_no_such_db" does not exist; fix'):
        load(PgTarget(_missing_db(pg_url)), path, retry=RetryPolicy(timeout=60))
    rc = main(["load", path, "--postgres", _missing_db(pg_url)])
    out, err = capsys.readouterr()
    assert time.monotonic() - t0 < 10
    assert (rc, out) == (1, "")
    assert err.startswith("provwh: error: PostgreSQL postgresql://") and (
        'database "provwh_no_such_db" does not exist; fix databases.postgres.url' in err
    ), err
    with pytest.raises(CannotConnect):
        SpoolConsumer(tmp_path / "spool", settings_for(None, _missing_db(pg_url))).start()


def test_what_is_transient_on_postgresql(pg_url):
    """Real errors of a real server: only the server's and the connection's are retried."""
    import psycopg

    from provwh.warehouse.pg import PgTarget as T

    url = pg_url.replace("+psycopg", "")

    def error_of(sql: str, conn=None) -> BaseException:
        try:
            with psycopg.connect(url, autocommit=True) as own:
                (conn or own).execute(sql)
        except psycopg.Error as exc:
            return exc
        raise AssertionError(f"{sql} did not fail")

    data = [
        error_of("SELECT 1 / 0"),  # 22012
        error_of("SELECT 'x'::int"),  # 22P02
        error_of("SELECT 2147483647::int + 1"),  # 22003
        error_of("CREATE TEMP TABLE t (a text PRIMARY KEY); INSERT INTO t VALUES (NULL)"),  # 23502
        error_of(f"CREATE TEMP TABLE t (a text PRIMARY KEY); INSERT INTO t VALUES ('{big(1)}')"),
    ]
    for exc in data:
        assert (T.is_transient(exc), T.is_data_error(exc)) == (False, True), exc
    other = error_of("SELECT * FROM no_such_table")
    assert (T.is_transient(other), T.is_data_error(other)) == (False, False)
    timeout = error_of("SET statement_timeout = 50; SELECT pg_sleep(2)")
    assert (T.is_transient(timeout), T.is_data_error(timeout)) == (True, False)
    with psycopg.connect(url, autocommit=True) as victim:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [victim.info.backend_pid])
        killed = error_of("SELECT 1", conn=victim)
    assert (T.is_transient(killed), T.is_data_error(killed)) == (True, False)
    with pytest.raises(psycopg.OperationalError) as down:  # nothing listens on port 1
        psycopg.connect("postgresql://postgres@127.0.0.1:1/x", connect_timeout=2)
    assert (T.is_transient(down.value), T.is_data_error(down.value)) == (True, False)


def test_a_record_300_deep_loads_whole_on_both_engines(engine, tmp_path):
    """Deeper than orjson writes (254) but not than Python's json reads: kept whole."""
    kind, loc, target = engine
    stats = load(target, write_lines(tmp_path / "b.jsonl", [deep_line(1, depth=300)]), workers=0)
    assert (stats.tasks, stats.rejects) == (1, 0)
    (used,) = query(loc, "SELECT used FROM tasks")[0]
    used = orjson.loads(used) if isinstance(used, str) else used
    depth, node = 0, used["deep"]
    while node:
        node, depth = node["a"], depth + 1
    assert depth == 300
