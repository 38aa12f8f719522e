"""The spool consumer (in-process), BaseConsumer, and a database that is down for a while."""

from __future__ import annotations

import os
import threading
import time

import pytest
from warehouse_helpers import PgCluster, count, find_pg_bin, query, task, wait_for, workflow

from provwh.core.config import load_settings
from provwh.transport.spool import SpoolWriter
from provwh.warehouse.base_consumer import BaseConsumer
from provwh.warehouse.consumer import SpoolConsumer, start_consumption_services
from provwh.warehouse.errors import SchemaError
from provwh.warehouse.loader import Loader, RetryPolicy


def settings_for(duck_path=None, pg_url=None, **extra):
    env = {"PROVWH_DUCKDB_ENABLED": "true" if duck_path else "false"}
    if duck_path:
        env["PROVWH_DUCKDB_PATH"] = str(duck_path)
    if pg_url:
        env["PROVWH_POSTGRES_URL"] = pg_url
    env.update(extra)
    return load_settings(env=env)


def test_consumer_loads_batches_as_they_appear_and_drains_on_stop(tmp_path, duck_path):
    spool = tmp_path / "spool"
    consumer = SpoolConsumer(spool, settings_for(duck_path), poll_interval=0.05).start()
    writer = SpoolWriter(spool, "run1", "jsonl", fsync=False)
    writer.write([workflow(), *[task(i) for i in range(5)]])
    assert wait_for(lambda: len(os.listdir(spool / "done")) == 1)
    writer.write([task(i) for i in range(5, 10)])
    writer.write([workflow(status="FINISHED", ended_at=2e9)])
    stats = consumer.stop(drain=True)
    # the workflow arrived in two parts: one workflow, its second part merged into it
    assert (stats.batches, stats.tasks, stats.workflows, stats.merged) == (3, 10, 1, 1)
    assert sorted(os.listdir(spool / "done")) == sorted(writer.names)
    assert os.listdir(spool / "claimed") == [] and not [
        n for n in os.listdir(spool) if n.endswith(".jsonl")
    ]
    assert count(duck_path, "tasks") == 10 and count(duck_path, "workflows") == 1
    assert query(duck_path, "SELECT status FROM workflows") == [("FINISHED",)]


def test_both_engines_when_both_are_enabled(tmp_path, duck_path, pg_url):
    spool = tmp_path / "spool"
    SpoolWriter(spool, "r", "parquet", fsync=False).write([task(i) for i in range(4)])
    consumer = SpoolConsumer(spool, settings_for(duck_path, pg_url))
    stats = consumer.load_pending()
    consumer.stop()
    assert (stats.batches, stats.tasks, stats.rows) == (1, 4, 4 + 24 + 8)
    assert count(duck_path, "tasks") == 4 == count(pg_url, "tasks")


def test_leftovers_in_claimed_are_loaded_once_at_start(tmp_path, duck_path):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "r", "jsonl", fsync=False)
    first = writer.write([task(i) for i in range(3)])
    Loader([__import__("provwh.warehouse.duck", fromlist=["x"]).DuckTarget(duck_path)]).load_file(
        spool / first
    )  # committed, but the consumer died before moving it
    os.makedirs(spool / "claimed", exist_ok=True)
    os.rename(spool / first, spool / "claimed" / first)
    second = writer.write([task(i) for i in range(3, 5)])
    os.rename(spool / second, spool / "claimed" / second)  # died mid-batch
    stats = SpoolConsumer(spool, settings_for(duck_path)).stop(drain=True)
    assert (stats.batches, stats.skipped, stats.tasks) == (1, 1, 2)
    assert sorted(os.listdir(spool / "done")) == sorted([first, second])
    assert count(duck_path, "tasks") == 5 and count(duck_path, "task_values") == 30


def test_unreadable_batch_is_set_aside_and_the_rest_loads(tmp_path, duck_path):
    spool = tmp_path / "spool"
    os.makedirs(spool)
    (spool / "0001-bad.parquet").write_bytes(b"PAR1 not really")
    (spool / "0002-x.jsonl").write_bytes(b'{"type":"task","task_id":"a"}\nnot json\n')
    consumer = SpoolConsumer(spool, settings_for(duck_path))
    stats = consumer.load_pending()
    consumer.stop()
    assert (stats.batches, stats.tasks, stats.rejects) == (1, 1, 1)
    rejected = sorted(os.listdir(spool / "rejected"))
    assert rejected == [
        "0001-bad.parquet",
        "0001-bad.parquet.error.txt",
        "0002-x.jsonl.rejects.jsonl",
    ]
    assert (
        "not a readable Parquet file" in (spool / "rejected/0001-bad.parquet.error.txt").read_text()
    )


def test_done_batches_are_pruned_after_the_retention(tmp_path, duck_path):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "r", "jsonl", fsync=False)
    old, new = writer.write([task(1)]), writer.write([task(2)])
    consumer = SpoolConsumer(spool, settings_for(duck_path), retention=3600)
    consumer.load_pending()
    os.utime(spool / "done" / old, (time.time() - 7200, time.time() - 7200))
    consumer._last_prune = 0
    consumer.load_pending()
    consumer.stop()
    assert os.listdir(spool / "done") == [new]


def test_two_consumers_on_one_duckdb_file_in_one_process(tmp_path, duck_path):
    spools = [tmp_path / "s1", tmp_path / "s2"]
    settings = settings_for(duck_path)
    consumers = [SpoolConsumer(s, settings, poll_interval=0.01).start() for s in spools]
    writers = [SpoolWriter(s, f"w{i}", "jsonl", fsync=False) for i, s in enumerate(spools)]
    for n in range(10):
        for i, w in enumerate(writers):
            w.write([task(1000 * i + 10 * n + k) for k in range(10)])
    totals = [c.stop(drain=True) for c in consumers]
    assert [t.tasks for t in totals] == [100, 100]
    assert count(duck_path, "tasks") == 200 and count(duck_path, "batches") == 20


def test_a_schema_problem_is_raised_at_start(tmp_path, pg_url, monkeypatch):
    from provwh.warehouse import migrate

    monkeypatch.setattr(migrate, "SCHEMA_REVISION", "9002")
    monkeypatch.setattr(migrate, "_is_known", lambda rev: True)
    with pytest.raises(SchemaError, match="run `provwh db upgrade`"):
        SpoolConsumer(tmp_path / "spool", settings_for(None, pg_url)).start()


def test_start_consumption_services_refuses_several_consumer_types():
    with pytest.raises(NotImplementedError):
        start_consumption_services(consumers=["a", "b"])


class Collector(BaseConsumer):
    def __init__(self, spool, stop_after=None, **kw):
        super().__init__(spool, poll_interval=0.02, **kw)
        self.messages: list[dict] = []
        self.stop_after = stop_after

    def message_handler(self, msg_obj):
        self.messages.append(msg_obj)
        return self.stop_after is None or len(self.messages) < self.stop_after


def test_base_consumer_sees_every_message_beside_the_loader(tmp_path, duck_path):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "r", "jsonl", fsync=False)
    writer.write([task(0)])  # before the subscription: not seen by default
    seen = Collector(spool).start(daemon=True)
    everything = Collector(spool, from_beginning=True).start(daemon=True)
    loader = SpoolConsumer(spool, settings_for(duck_path), poll_interval=0.02).start()
    for i in range(1, 4):
        writer.write([task(i), {"type": "task", "task_id": f"b{i}", "data": b"\x00\x01"}])
    loader.stop(drain=True)
    assert wait_for(lambda: len(seen.messages) == 6 and len(everything.messages) == 7)
    seen.stop()
    everything.stop()
    assert [m["task_id"] for m in seen.messages] == [
        "0000000000000001-1",
        "b1",
        "0000000000000002-2",
        "b2",
        "0000000000000003-3",
        "b3",
    ]
    assert seen.messages[1]["data"] == b"\x00\x01"  # bytes come back as bytes
    assert count(duck_path, "tasks") == 7


def test_base_consumer_stops_when_the_handler_says_so(tmp_path):
    spool = tmp_path / "spool"
    SpoolWriter(spool, "r", "jsonl", fsync=False).write([task(i) for i in range(5)])
    c = Collector(spool, stop_after=2, from_beginning=True)
    c.start(threaded=False)  # returns when the handler returns False
    assert len(c.messages) == 2


@pytest.fixture
def stopped_cluster():
    bindir = find_pg_bin()
    if bindir is None:
        pytest.fail("no PostgreSQL binaries (initdb, pg_ctl) for the database-down test")
    cluster = PgCluster(bindir).init()
    yield cluster
    cluster.destroy()


def test_database_down_then_up_nothing_lost(tmp_path, stopped_cluster):
    """The server is down when loading starts, comes up later, goes down and up again."""
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "r", "jsonl", fsync=False)
    for b in range(3):
        writer.write([task(10 * b + i) for i in range(10)])
    url = stopped_cluster.url().replace("postgresql://", "postgresql+psycopg://")
    retry = RetryPolicy(initial=0.1, maximum=0.5)
    consumer = SpoolConsumer(spool, settings_for(None, url), poll_interval=0.05, retry=retry)
    consumer.start()  # the database is down: start does not fail
    starter = threading.Timer(1.0, stopped_cluster.start)
    starter.start()
    assert wait_for(lambda: len(os.listdir(spool / "done")) == 3, timeout=60)
    starter.join()  # pg_ctl start -w may still be polling: stopping under it fails the start
    stopped_cluster.stop()
    for b in range(3, 5):
        writer.write([task(10 * b + i) for i in range(10)])
    time.sleep(0.5)  # the consumer retries against the stopped server
    assert os.listdir(spool / "done").__len__() == 3
    stopped_cluster.start()
    stats = consumer.stop(drain=True)
    assert stats.tasks == 50 and stats.batches == 5
    assert count(url, "tasks") == 50 and count(url, "task_values") == 300
    assert count(url, "batches") == 5


def test_a_second_consumer_leaves_the_batches_a_live_one_holds(tmp_path, duck_path):
    """Two consumers of one folder: a claimed batch another consumer is loading (its lock
    held) is not parsed again; once its holder is gone, it is a leftover and loads once."""
    import fcntl

    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "r", "jsonl", fsync=False)
    held_name = writer.write([task(i) for i in range(3)])
    writer.write([task(i) for i in range(3, 5)])
    (spool / "claimed").mkdir(exist_ok=True)
    os.rename(spool / held_name, spool / "claimed" / held_name)  # taken by a live consumer
    fd = os.open(spool / "claimed" / held_name, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    consumer = SpoolConsumer(spool, settings_for(duck_path))
    first = consumer.load_pending()
    assert (first.batches, first.tasks) == (1, 2)  # only the batch nobody held
    assert os.listdir(spool / "claimed") == [held_name]
    os.close(fd)  # its consumer died
    second = consumer.load_pending()
    consumer.stop()
    assert (second.batches, second.tasks) == (1, 3)
    assert os.listdir(spool / "claimed") == [] and len(os.listdir(spool / "done")) == 2
    assert count(duck_path, "tasks") == 5


def test_a_forked_child_does_not_keep_the_claim_locks(tmp_path, duck_path):
    """The consumer forks while it holds a claim lock: the child's copy is closed, so once
    the parent lets go, another consumer can take the batch while the child still lives."""
    import fcntl

    spool = tmp_path / "spool"
    name = SpoolWriter(spool, "r", "jsonl", fsync=False).write([task(1)])
    consumer = SpoolConsumer(spool, settings_for(duck_path))
    claimed = consumer._claim(spool / name)
    assert claimed is not None
    read, write = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: says it runs (its at-fork handlers ran), lives until told
        os.close(write)
        os.write(ready_w, b"r")
        os.read(read, 1)
        os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"r"
        consumer._release_all()  # the parent lets go, the child still lives
        fd = os.open(claimed, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the child held it
        os.close(fd)
    finally:
        os.write(write, b"x")
        os.waitpid(pid, 0)
        consumer.stop()


def test_the_file_stays_open_between_passes_until_idle_or_waited_for(
    tmp_path, duck_path, monkeypatch
):
    """A consumer keeps its DuckDB file open from pass to pass while batches come (each close
    is a checkpoint), and closes it once ``KEEP_OPEN`` s pass without one, or at once when
    another process says it waits for the file."""
    import subprocess
    import sys

    from provwh.warehouse import duck, follow

    def is_open() -> bool:
        with duck.reading(duck_path) as cur:
            return cur is not None

    spool = tmp_path / "spool"
    consumer = SpoolConsumer(spool, settings_for(duck_path), poll_interval=0.05).start()
    writer = SpoolWriter(spool, "run1", "jsonl", fsync=False)
    try:
        writer.write([workflow(), task(0)])
        assert wait_for(lambda: len(os.listdir(spool / "done")) == 1)
        t0 = time.monotonic()
        time.sleep(0.4)  # the pass is over (its derivation too)
        assert is_open()  # between passes, kept
        assert wait_for(lambda: not is_open(), timeout=10)
        assert time.monotonic() - t0 >= follow.KEEP_OPEN - 0.3
        # another process finds the file locked while it is kept: its note lets it in
        monkeypatch.setattr(follow, "KEEP_OPEN", 120.0)  # the note alone, not the idle time
        writer.write([task(1)])
        assert wait_for(lambda: len(os.listdir(spool / "done")) == 2)
        time.sleep(0.4)
        assert is_open()
        code = (
            "import sys, time, duckdb\n"
            "from provwh.warehouse import duck\n"
            "deadline = time.monotonic() + 20\n"
            "while True:\n"
            "    try:\n"
            "        con = duckdb.connect(sys.argv[1]); break\n"
            "    except duckdb.IOException:\n"
            "        duck.say_waiting(sys.argv[1])\n"
            "        assert time.monotonic() < deadline\n"
            "        time.sleep(0.05)\n"
            "print(con.execute('SELECT count(*) FROM tasks').fetchone()[0])\n"
        )
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-c", code, str(duck_path)], capture_output=True,
                             text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["2"]
        assert time.monotonic() - t0 < 15
    finally:
        consumer.stop(drain=True)
    assert count(duck_path, "tasks") == 2


def test_batches_written_during_a_pass_load_without_waiting_a_poll(tmp_path, duck_path):
    """A pass that loaded something is followed by the next at once: the batches a steady
    stream wrote meanwhile are due now, not ``poll_interval`` later (freshness, issue 13)."""
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "run1", "jsonl", fsync=False)
    loaded: dict[str, float] = {}

    class Writing(SpoolConsumer):
        def _done(self, path: str) -> None:
            super()._done(path)
            loaded[os.path.basename(path)] = time.monotonic()
            if len(loaded) == 1:  # while this pass goes on, the stream writes the next batch
                writer.write([task(i) for i in range(5, 10)])

    writer.write([workflow(), *[task(i) for i in range(5)]])
    consumer = Writing(spool, settings_for(duck_path), poll_interval=30).start()
    try:
        assert wait_for(lambda: len(loaded) == 2, timeout=10)
    finally:
        stats = consumer.stop(drain=True)
    first, second = (loaded[n] for n in writer.names)
    assert second - first < 5  # not the 30 s poll
    assert stats.batches == 2 and count(duck_path, "tasks") == 10
