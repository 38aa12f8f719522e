"""Worker processes for PostgreSQL loads: COPY text made outside psycopg, same rows, no loss."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal

import orjson
import psycopg
import pytest
from warehouse_helpers import count, dump, query, task, workflow, write_jsonl, write_lines

from provwh.warehouse import copy_text, ddl
from provwh.warehouse import loader as loader_mod
from provwh.warehouse.duck import DuckTarget
from provwh.warehouse.loader import Loader
from provwh.warehouse.pg import PgTarget
from provwh.warehouse.pipeline import normalized_chunks
from provwh.warehouse.workers import WorkerPool

# --- COPY text -----------------------------------------------------------------------------


def test_copy_text_exact_bytes():
    assert copy_text.encode("task_tags", [("t\t1", "a\\b"), ("n\nl", "c\rr")]) == (
        b"t\\t1\ta\\\\b\nn\\nl\tc\\rr\n"
    )
    assert copy_text.encode("task_tags", []) == b""
    assert copy_text.encode("lineage_pending", [("ü",)]) == "ü\n".encode()


def test_copy_text_rejects_unexpected_types():
    with pytest.raises(TypeError, match="text column got int"):
        copy_text.encode("task_tags", [("t", 3)])
    with pytest.raises(TypeError, match="a row of 1 values for 2 columns"):
        copy_text.encode("task_tags", [("t",)])


_TRICKY_TEXT = ["plain", "tab\there", "nl\nhere", "cr\rhere", "back\\slash", "\\N", "ünï€😀", ""]
_TRICKY_FLOATS = [0.1, -0.0, 1e16, 1.5e-300, 5e-324, 1.7976931348623157e308, 123456789.125]


def _value_rows() -> list[tuple]:
    """task_values rows with every kind of value the encoder meets, times in microseconds."""
    rows = []
    times = [0, 1, -1, 1_700_000_000_123_456, -62_135_596_800_000_000 + 1, 253_402_300_799_999_999]
    for i, text in enumerate(_TRICKY_TEXT):
        rows.append(
            (
                "t1",
                "used",
                i,
                f"k.{text}",
                text,
                "str",
                text,
                None,
                None,
                None,
                i,
                None,
                times[i % 6],
            )
        )
    for i, num in enumerate(_TRICKY_FLOATS + [float("inf"), float("-inf"), float("nan")]):
        rows.append(("t2", "used", i, "x", "x", "float", None, num, None, None, -i, i, None))
    rows.append(("t3", "used", 0, "b", "b", "bool", None, None, True, None, 2**63 - 1, None, None))
    rows.append(("t3", "used", 1, "b", "b", "bool", None, None, False, None, -(2**63), None, None))
    doc = orjson.dumps({"s": "a\tb\nc\\d", "l": [1, 2.5, None]}).decode()
    rows.append(("t3", "generated", 2, "j", "j", "dict", None, 42, None, doc, 5, 6, 17))
    return rows


def test_copy_text_lands_like_psycopg_write_row(pg_url):
    """The same rows through copy_text and through psycopg's write_row: equal, value by value."""
    from provwh.warehouse.pg import _time_converter

    rows = _value_rows()
    conn = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    with conn:
        conn.execute("CREATE TABLE tv_psycopg (LIKE task_values)")
        cols = ddl.column_list("task_values")
        with conn.cursor() as cur:
            with cur.copy(f"COPY task_values ({cols}) FROM STDIN") as cp:
                cp.write(copy_text.encode("task_values", rows))
            convert = _time_converter("task_values")
            with cur.copy(f"COPY tv_psycopg ({cols}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(convert(row))
        order = " ORDER BY task_id, direction, ordinal"
        ours = conn.execute(f"SELECT * FROM task_values{order}").fetchall()
        theirs = conn.execute(f"SELECT * FROM tv_psycopg{order}").fetchall()
        same = conn.execute(
            "SELECT count(*) FROM (SELECT * FROM task_values EXCEPT SELECT * FROM tv_psycopg) d"
        ).fetchone()[0]
    assert len(ours) == len(rows) == 21
    assert [r[6] for r in ours[:8]] == _TRICKY_TEXT  # t1's rows, in ordinal order
    assert [repr(r) for r in ours] == [repr(r) for r in theirs]  # NaN != NaN: repr compares
    assert same == 0  # PostgreSQL's NaN equals NaN
    floats = [r[7] for r in ours if r[0] == "t2"]
    assert floats[:7] == _TRICKY_FLOATS and floats[7:9] == [float("inf"), float("-inf")]
    assert [r[12] for r in ours[:6]] == [
        dt.datetime(1970, 1, 1),
        dt.datetime(1970, 1, 1, 0, 0, 0, 1),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
        dt.datetime(2023, 11, 14, 22, 13, 20, 123456),
        dt.datetime(1, 1, 1, 0, 0, 0, 1),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
    ]
    assert [r[9] for r in ours if r[1] == "generated"][0] == {
        "s": "a\tb\nc\\d",
        "l": [1, 2.5, None],
    }


# --- loads through workers -----------------------------------------------------------------


@pytest.fixture
def always_workers(monkeypatch):
    """Workers for any load, however small (normally only from WORKER_MIN_BYTES on)."""
    monkeypatch.setattr(loader_mod, "WORKER_MIN_BYTES", 0)


@pytest.fixture(params=["postgres", "duckdb"])
def new_target(request, tmp_path):
    """A factory of fresh, empty warehouses of one engine: (location, target)."""
    made = []

    def make():
        if request.param == "duckdb":
            loc = str(tmp_path / f"w{len(made)}.duckdb")
            made.append(DuckTarget(loc))
        else:
            loc = request.getfixturevalue("make_pg_url")()
            made.append(PgTarget(loc))
        return loc, made[-1]

    yield make
    for target in made:
        target.close()


def _batches(tmp_path) -> list[str]:
    nul = task(90, used={"blob": "a\x00b"}, stdout="line\x00")
    files = [
        write_jsonl(
            tmp_path / "1.jsonl", [workflow(), *[task(i, tags=["t", "u"]) for i in range(5)]]
        ),
        write_jsonl(
            tmp_path / "2.jsonl",
            [
                task(i, parent_task_id="0000000000000000-0", dependencies=["0000000000000001-1"])
                for i in range(5, 9)
            ]
            + [nul],
        ),  # fmt: skip
        write_lines(
            tmp_path / "3.jsonl",
            [
                orjson.dumps(task(10)),
                b"not json",
                orjson.dumps(
                    {
                        "type": "object",
                        "object_id": "m",
                        "data": {"$binary": {"base64": "AAE=", "subType": "00"}},
                    }
                ),
            ],
        ),  # fmt: skip
    ]
    return files


def test_load_through_workers_equals_load_in_process(new_target, tmp_path, always_workers):
    files = _batches(tmp_path)
    results = {}
    for workers in (0, 1):
        url, target = new_target()
        loader = Loader([target], workers=workers)
        stats = loader.load_files(files)
        loader.derive_lineage()
        assert (loader._pool is not None) == bool(workers)
        if workers:
            pid = loader._pool._workers[0].proc.pid
            assert pid != os.getpid()
        loader.close()
        assert loader._pool is None
        assert (stats.batches, stats.tasks, stats.workflows, stats.objects, stats.rejects) == (
            3,
            11,
            1,
            1,
            1,
        )
        results[workers] = (stats.rows, dump(url))
    rows0, dump0 = results[0]
    rows1, dump1 = results[1]
    assert rows1 == rows0 == 11 + 1 + 1 + 10 * 6 + 3 + 22 + 10 + 8  # tasks ... edges
    assert dump1 == dump0
    assert len(dump1["tasks"]) == 11 and len(dump1["task_tags"]) == 10
    assert len(dump1["task_edges"]) == 8 and len(dump1["rejects"]) == 1
    assert sorted(r[4] for r in dump1["batches"]) == [1, 5, 5]  # tasks per batch (ledger)
    assert [r[8] for r in dump1["batches"]] == [r[8] for r in dump0["batches"]]


def test_workers_merge_with_stored_tasks(new_target, tmp_path, always_workers):
    """A task stored by an earlier batch is merged (the loader parses that chunk itself)."""
    pg_url, target = new_target()
    first = write_jsonl(tmp_path / "a.jsonl", [task(1, generated=None, ended_at=None)])
    second = write_jsonl(
        tmp_path / "b.jsonl",
        [{"type": "task", "task_id": task(1)["task_id"], "generated": {"y": 2}, "ended_at": 5.0},
         task(2)],
    )  # fmt: skip
    loader = Loader([target], workers=1)
    s1 = loader.load_files([first])
    s2 = loader.load_files([second])
    loader.close()
    assert (s1.tasks, s2.tasks, s2.merged, s2.batches, s2.skipped) == (1, 1, 1, 1, 0)
    assert count(pg_url, "tasks") == 2
    tid = task(1)["task_id"]
    rows = query(
        pg_url,
        "SELECT direction, key_path FROM task_values WHERE task_id = %s ORDER BY 1, 2",
        [tid],
    )
    assert rows == [("generated", "y"), ("used", "lr"), ("used", "opts.epochs"), ("used", "path"),
                    ("used", "x")]  # fmt: skip
    assert query(pg_url, "SELECT ended_at FROM tasks WHERE task_id = %s", [tid]) == [
        (dt.datetime(1970, 1, 1, 0, 0, 5),)
    ]
    assert count(pg_url, "task_telemetry") == 4
    assert query(pg_url, "SELECT tasks, row_count FROM batches ORDER BY tasks") == [
        (1, 1 + 4 + 2),
        (2, 2 + 7 + 2),  # its own rows: the merge rebuilds more
    ]


def test_unreadable_file_through_workers_is_reported_and_the_rest_loads(
    pg_url, tmp_path, always_workers
):
    good = write_jsonl(tmp_path / "a.jsonl", [task(1), task(2)])
    bad = tmp_path / "b.parquet"
    bad.write_bytes(b"PAR1 truncated")
    last = write_jsonl(tmp_path / "c.jsonl", [task(3)])
    errors = []
    loader = Loader([PgTarget(pg_url)], workers=1)
    stats = loader.load_files([good, str(bad), last], on_error=lambda p, e: errors.append((p, e)))
    loader.close()
    assert [p for p, _ in errors] == [str(bad)]
    assert "not a readable Parquet file" in str(errors[0][1])
    assert (stats.files, stats.batches, stats.tasks) == (2, 2, 3)
    assert count(pg_url, "tasks") == 3


def _chunk_plan(files, max_records):
    return [
        (item.path, None if item.norm is None else (item.norm.chunk.index, item.norm.chunk.hash))
        for item in normalized_chunks(files, max_records, depth=0)
    ]


def test_worker_killed_mid_load_the_rest_is_normalized_here(tmp_path, caplog):
    files = [
        write_jsonl(tmp_path / f"{n}.jsonl", [task(n * 10 + i) for i in range(5)]) for n in range(4)
    ]
    expected = _chunk_plan(files, 2)  # 3 chunks and an end item per file
    assert len(expected) == 16
    pool = WorkerPool(1)
    got = []
    with caplog.at_level(logging.WARNING, logger="provwh.warehouse"):
        for n, item in enumerate(pool.chunks(files, 2)):
            if n == 1:
                os.kill(pool._workers[0].proc.pid, signal.SIGKILL)
            norm = item.norm
            got.append((item.path, None if norm is None else (norm.chunk.index, norm.chunk.hash)))
            if norm is not None:
                assert len(norm.tasks) == len(norm.chunk.lines)
    pool.close()
    assert got == expected
    assert "a normalizing worker exited" in caplog.text


def test_worker_output_is_encoded_and_in_order(tmp_path):
    files = [write_jsonl(tmp_path / f"{n}.jsonl", [task(n), workflow()]) for n in range(3)]
    pool = WorkerPool(2)
    items = list(pool.chunks(files, 100))
    again = list(pool.chunks(files[:1], 100))  # the workers stay up between loads
    pids = [w.proc.pid for w in pool._workers]
    pool.close()
    assert [i.path for i in items] == [files[0], files[0], files[1], files[1], files[2], files[2]]
    assert len(set(pids)) == 2
    norm = items[0].norm
    assert norm.tasks == {task(0)["task_id"]: None}
    assert sorted(norm.encoded) == ["task_telemetry", "task_values", "tasks"]
    assert norm.encoded["task_values"][0] == 6 and norm.rows.task_values == []
    assert norm.encoded["tasks"][1].startswith(task(0)["task_id"].encode() + b"\t")
    assert len(norm.rows.workflows) == 1 and norm.row_count() == 1 + 1 + 6 + 2
    assert again[0].norm.encoded == norm.encoded


def test_cli_workers_option(capsys, pg_url, tmp_path, always_workers):
    from provwh.cli import main

    a = write_jsonl(tmp_path / "a.jsonl", [workflow(), *[task(i) for i in range(4)]])
    b = write_jsonl(tmp_path / "b.jsonl", [task(i) for i in range(4, 6)])
    assert main(["load", a, b, "--postgres", pg_url, "--workers", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("loaded 2 batches: 55 rows (6 tasks, 1 workflow), 0 rejects in ")
    assert err == "" and count(pg_url, "tasks") == 6
    assert main(["load", a, "--postgres", pg_url, "--workers", "-1"]) == 1
    assert capsys.readouterr().err == "provwh: error: workers must be 0 or more, got -1\n"


def test_a_task_in_two_chunks_of_one_transaction_is_merged(new_target, tmp_path, always_workers):
    """Chunks sharing a transaction (DuckDB groups them) with one task in both: one task row."""
    loc, target = new_target()
    tid = task(1)["task_id"]
    a = write_jsonl(tmp_path / "a.jsonl", [task(1, generated=None), task(2)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"type": "task", "task_id": tid, "generated": {"z": 7}}])
    c = write_jsonl(tmp_path / "c.jsonl", [task(3)])
    loader = Loader([target], workers=1, group_records=100)
    stats = loader.load_files([a, b, c])
    loader.close()
    assert (stats.batches, stats.tasks, stats.merged) == (3, 3, 0)  # task 1 once
    assert count(loc, "tasks") == 3
    assert query(
        loc, "SELECT key_path FROM task_values WHERE task_id = %s AND direction = 'generated'",
        [tid],
    ) == [("z",)]  # fmt: skip
    assert count(loc, "task_values") == 4 + 1 + 6 + 6 and count(loc, "batches") == 3


def test_arrow_encoding_for_duckdb(tmp_path):
    files = [write_jsonl(tmp_path / "a.jsonl", [task(1), task(2, tags=["x"])])]
    pool = WorkerPool(1, "arrow")
    items = list(pool.chunks(files, 100))
    pool.close()
    enc = items[0].norm.encoded
    assert {t: (n, p.num_rows) for t, (n, p) in enc.items()} == {
        "tasks": (2, 2),
        "task_values": (12, 12),
        "task_telemetry": (4, 4),
        "task_tags": (1, 1),
    }
    assert enc["tasks"][1].column("task_id").to_pylist() == [task(1)["task_id"], task(2)["task_id"]]


def test_file_names_with_tabs_and_newlines_reach_the_worker(tmp_path):
    path = write_jsonl(tmp_path / "odd\tname\nhere ü.jsonl", [task(1)])
    pool = WorkerPool(1)
    items = list(pool.chunks([path], 100))
    pool.close()
    assert [(i.path, i.error) for i in items] == [(path, None), (path, None)]
    assert items[0].norm.tasks == {task(1)["task_id"]: None}


@pytest.mark.parametrize("group_records", [1, 100])
def test_a_chunk_without_tasks_through_workers(new_target, tmp_path, always_workers, group_records):
    """A batch holding only a workflow record (the run's end record, flushed last) loads through a
    worker on both engines, alone in its transaction or grouped with a batch of tasks (issue 18:
    DuckDB got COPY bytes for the missing task table and crashed the run's exit)."""
    loc, target = new_target()
    tasks_file = write_jsonl(tmp_path / "a.jsonl", [task(1), task(2)])
    end = {**workflow(), "status": "FINISHED", "ended_at": 9.0}
    wf_file = write_jsonl(tmp_path / "b.jsonl", [end])
    loader = Loader([target], workers=1, group_records=group_records)
    stats = loader.load_files([tasks_file, wf_file])
    loader.close()
    assert (stats.batches, stats.tasks, stats.workflows, stats.skipped) == (2, 2, 1, 0)
    assert count(loc, "tasks") == 2 and count(loc, "batches") == 2
    assert query(loc, "SELECT workflow_id, status FROM workflows") == [
        (workflow()["workflow_id"], "FINISHED")
    ]


# --- loaded_at -------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 1])
def test_loaded_at_is_the_time_of_the_transaction_that_wrote_the_row(
    new_target, tmp_path, always_workers, workers
):
    """Every task and workflow row a transaction writes, inserted or merged, gets the time it
    took the loader lock: in process and through workers (COPY text, Arrow tables); one time
    per transaction, a later transaction's later; rows it does not touch keep theirs."""
    loc, target = new_target()
    t1, t2, t3 = (task(i)["task_id"] for i in (1, 2, 3))
    first = write_jsonl(tmp_path / "a.jsonl", [workflow(), task(1, ended_at=None), task(2)])
    merge = {"type": "task", "task_id": t1, "status": "FINISHED", "ended_at": 5.0}
    second = write_jsonl(tmp_path / "b.jsonl", [merge, task(3, wf="wf-2")])
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    loader = Loader([target], workers=workers)
    loader.load_files([first])
    loaded = dict(query(loc, "SELECT task_id, loaded_at FROM tasks"))
    loader.load_files([second])
    loader.close()
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    (wf_time,) = query(loc, "SELECT loaded_at FROM workflows")[0]
    assert loaded[t1] == loaded[t2] == wf_time
    assert before - dt.timedelta(seconds=5) < wf_time < after + dt.timedelta(seconds=5)
    now = dict(query(loc, "SELECT task_id, loaded_at FROM tasks"))
    assert now[t2] == loaded[t2]  # not written again
    assert now[t1] == now[t3] > loaded[t1]  # merged, inserted: the second transaction's time
    assert query(loc, "SELECT status FROM tasks WHERE task_id = %s", [t1]) == [("FINISHED",)]


def test_a_postgres_load_notifies_the_workflows_it_wrote(pg_url, tmp_path):
    """The loader NOTIFYs provwh_loaded with the workflows of the tasks and workflows it wrote,
    at commit; a batch loaded before writes nothing and notifies nothing."""
    from provwh.warehouse.migrate import libpq_url
    from provwh.warehouse.pg import LOADED_CHANNEL

    recs = [workflow("wf-3"), task(1, wf="wf-2"), task(2, wf="wf-1"), task(3, wf="wf-2")]
    path = write_jsonl(tmp_path / "a.jsonl", recs)
    with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
        conn.execute(f"LISTEN {LOADED_CHANNEL}")
        for _ in range(2):  # the second time, the ledger knows the batch
            loader = Loader([PgTarget(pg_url)], workers=0)
            loader.load_files([path])
            loader.close()
        notes = list(conn.notifies(timeout=2))
    assert [orjson.loads(n.payload) for n in notes] == [{"workflows": ["wf-1", "wf-2", "wf-3"]}]
    assert {n.channel for n in notes} == {LOADED_CHANNEL}
