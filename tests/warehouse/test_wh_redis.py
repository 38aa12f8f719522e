"""The Redis Streams transport against real Redis and PostgreSQL: every task exactly once.

Run as a script, this file is also the producer and consumer processes the tests start
(``python test_wh_redis.py produce|consume ...``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from warehouse_helpers import count, free_port, query, task, wait_for

import provwh
from provwh.transport import spool as spool_mod
from provwh.transport.batches import list_batches
from provwh.transport.redis_stream import RedisBatchWriter

REPO = str(Path(provwh.__file__).resolve().parent.parent)
TESTS = str(Path(__file__).resolve().parent)
REDIS_URL = os.environ.get("PROVWH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
VALUES_PER_TASK = 6  # task_values rows of warehouse_helpers.task()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}
    env["PYTHONPATH"] = os.pathsep.join([REPO, TESTS, env.get("PYTHONPATH", "")])
    return env


def _script(*args: object) -> list[str]:
    return [sys.executable, __file__, *map(str, args)]


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"no Redis server at {REDIS_URL} for the broker tests: {exc}")
    yield client
    client.close()


@pytest.fixture
def stream(redis_client):
    """A stream key of this test only, deleted after it."""
    key = f"provwh:test:{uuid.uuid4().hex[:12]}"
    yield key
    redis_client.delete(key)


def _consumer(pg_url: str, stream: str, work_dir: Path, **kwargs):
    from provwh.warehouse.pg import PgTarget
    from provwh.warehouse.redis_consumer import RedisConsumer

    return RedisConsumer(
        url=REDIS_URL, stream=stream, work_dir=work_dir, targets=[PgTarget(pg_url)], **kwargs
    )


def _pending(client, stream: str, group: str = "provwh-loaders") -> int:
    return client.xpending(stream, group)["pending"]


def _assert_exactly_once(pg_url: str, tasks: int, batches: int) -> None:
    assert count(pg_url, "tasks") == tasks
    assert count(pg_url, "batches") == batches
    assert count(pg_url, "task_values") == tasks * VALUES_PER_TASK
    assert query(pg_url, "SELECT count(DISTINCT task_id) FROM task_values") == [(tasks,)]


# --- producers and a consumer killed mid-batch ---------------------------------------------


def test_producers_and_consumer_killed_mid_batch_load_every_task_once(
    tmp_path, pg_url, redis_client, stream
):
    n_producers, n_batches, per_batch = 3, 8, 150
    total_batches = n_producers * n_batches
    work = tmp_path / "work"
    marker = tmp_path / "stalled"
    first = subprocess.Popen(
        _script("consume", pg_url, stream, work, "first", 5, marker),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    producers = [
        subprocess.Popen(
            _script("produce", stream, tmp_path / f"spool{p}", p, n_batches, per_batch),
            env=_env(),
        )
        for p in range(n_producers)
    ]
    try:
        # the consumer stalls inside its 6th batch's transaction: kill it there
        stalled = wait_for(marker.exists, timeout=30)
        assert stalled, first.stdout.read().decode() if first.poll() is not None else "no stall"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    for proc in producers:
        assert proc.wait(timeout=30) == 0
    assert _pending(redis_client, stream) >= 1  # the killed batch was delivered, never acked
    assert 5 <= count(pg_url, "batches") < total_batches

    restart = subprocess.Popen(
        _script("consume", pg_url, stream, work, "second", 0, ""),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        done = wait_for(lambda: count(pg_url, "batches") >= total_batches, timeout=30)
    finally:
        restart.send_signal(signal.SIGTERM)  # drains, then exits
        out = restart.communicate(timeout=30)[0].decode()
    assert done and restart.returncode == 0, out
    _assert_exactly_once(pg_url, n_producers * n_batches * per_batch, total_batches)
    assert _pending(redis_client, stream) == 0
    assert redis_client.xlen(stream) == 0  # acknowledged entries are deleted
    for p in range(n_producers):  # every batch went through Redis, none fell back
        assert list_batches(tmp_path / f"spool{p}") == []


def test_killed_between_commit_and_ack_is_replayed_as_a_no_op(
    tmp_path, pg_url, redis_client, stream
):
    writer = RedisBatchWriter(tmp_path / "spool", "r1", "jsonl", False, REDIS_URL, stream)
    for b in range(3):
        writer.write([task(b * 100 + i) for i in range(100)])
    crashed = _consumer(pg_url, stream, tmp_path / "work", name="crashed", min_idle=0.0)
    crashed._ack = lambda _entry_id: None  # "killed" right after each commit
    assert crashed.load_pending().batches == 3
    crashed.stop(drain=False)
    assert _pending(redis_client, stream) == 3
    other = _consumer(pg_url, stream, tmp_path / "work", name="other", min_idle=0.0)
    stats = other.load_pending()
    other.stop()
    assert (stats.batches, stats.skipped) == (0, 3)
    assert _pending(redis_client, stream) == 0 and redis_client.xlen(stream) == 0
    _assert_exactly_once(pg_url, 300, 3)


def test_parquet_batches_and_entries_without_a_batch(tmp_path, pg_url, redis_client, stream):
    writer = RedisBatchWriter(tmp_path / "spool", "pq", "parquet", False, REDIS_URL, stream)
    writer.write([task(i) for i in range(50)])
    redis_client.xadd(stream, {"name": "junk.jsonl"})  # no payload: set aside, acknowledged
    consumer = _consumer(pg_url, stream, tmp_path / "work")
    consumer.start()
    assert wait_for(lambda: redis_client.xlen(stream) == 0, timeout=20)
    consumer.stop()
    _assert_exactly_once(pg_url, 50, 1)
    assert [p.name for p in (tmp_path / "work" / "rejected").iterdir() if "error" in p.name]
    assert not list((tmp_path / "work" / "staging").glob("*/*"))  # staging cleaned


# --- the producer side ------------------------------------------------------------------------


def test_sent_batches_keep_a_local_copy_for_the_dump(tmp_path, redis_client, stream):
    writer = RedisBatchWriter(tmp_path / "spool", "d", "jsonl", False, REDIS_URL, stream)
    names = [writer.write([task(b * 10 + i) for i in range(10)]) for b in range(2)]
    assert writer.names == names and writer.sent == 2 and redis_client.xlen(stream) == 2
    lines = list(spool_mod.iter_raw_lines(writer.spool_dir, writer.names))
    assert len(lines) == 20
    bare = RedisBatchWriter(tmp_path / "bare", "d", "jsonl", False, REDIS_URL, stream,
                            keep_copy=False)  # fmt: skip
    bare.write([task(1)])
    assert list_batches(tmp_path / "bare" / "done") == []


def test_redis_down_falls_back_to_the_spool_and_warns_once(tmp_path, pg_url, caplog):
    from provwh.warehouse.consumer import SpoolConsumer
    from provwh.warehouse.pg import PgTarget

    spool = tmp_path / "spool"
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    writer = RedisBatchWriter(spool, "down", "jsonl", True, url, "provwh:unused",
                              retry_interval=0.0)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="provwh.transport"):
        for b in range(4):
            writer.write([task(b * 25 + i) for i in range(25)])
    warnings = [r for r in caplog.records if r.name == "provwh.transport"]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    assert (writer.sent, writer.fallen_back) == (0, 4)
    assert [p.name for p in list_batches(spool)] == writer.names
    consumer = SpoolConsumer(spool, None, targets=[PgTarget(pg_url)])  # type: ignore[arg-type]
    consumer.load_pending()
    consumer.stop()
    _assert_exactly_once(pg_url, 100, 4)
    assert len(list(spool_mod.iter_raw_lines(spool, writer.names))) == 100  # the dump still works


def test_combined_consumer_loads_the_stream_and_the_fallback_spool(
    tmp_path, pg_url, redis_client, stream
):
    """The controller's in-process wiring: one consumer object for both ways a batch went."""
    from provwh.warehouse.consumer import SpoolConsumer
    from provwh.warehouse.pg import PgTarget
    from provwh.warehouse.redis_consumer import CombinedConsumer

    spool = tmp_path / "spool"
    up = RedisBatchWriter(spool, "up", "jsonl", False, REDIS_URL, stream)
    down = RedisBatchWriter(spool, "dn", "jsonl", False, f"redis://127.0.0.1:{free_port()}/0")
    for b in range(3):
        up.write([task(b * 10 + i) for i in range(10)])
        down.write([task(1000 + b * 10 + i) for i in range(10)])
    assert (up.sent, down.fallen_back) == (3, 3)
    both = CombinedConsumer(
        [
            _consumer(pg_url, stream, tmp_path / "work", poll_interval=0.05),
            SpoolConsumer(spool, None, targets=[PgTarget(pg_url)], poll_interval=0.05),  # type: ignore[arg-type]
        ]
    ).start()
    stats = both.stop(drain=True)
    assert stats.batches == 6
    _assert_exactly_once(pg_url, 60, 6)
    assert len(list(spool_mod.iter_raw_lines(spool, up.names + down.names))) == 60


def test_writer_goes_back_to_redis_once_it_is_up(tmp_path, caplog):
    redis = pytest.importorskip("redis")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    # long enough for the server to start within it on a busy machine
    interval = 3.0
    writer = RedisBatchWriter(tmp_path / "spool", "up", "jsonl", False, url, "provwh:b",
                              retry_interval=interval)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="provwh.transport"):
        writer.write([task(1)])
        down_at = time.monotonic()
        assert writer.fallen_back == 1
        with _redis_server(tmp_path, port):
            client = redis.Redis(port=port)
            assert wait_for(lambda: _pings(client), timeout=interval - 0.5)
            writer.write([task(2)])  # still within retry_interval: the spool again
            time.sleep(max(0.0, down_at + interval + 0.05 - time.monotonic()))
            writer.write([task(3)])
            assert (writer.sent, writer.fallen_back) == (1, 2)
            assert client.xlen("provwh:b") == 1
            writer.close()
            client.close()
    assert any("is back" in r.getMessage() for r in caplog.records)
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


@contextmanager
def _redis_server(tmp_path: Path, port: int):
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield server
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_import_provwh_does_not_import_redis():
    code = (
        "import sys, provwh, provwh.transport.redis_stream, provwh.warehouse.redis_consumer; "
        "assert 'redis' not in sys.modules, 'redis imported'"
    )
    subprocess.run([sys.executable, "-c", code], env=_env(), check=True, timeout=60)


# --- the processes the tests start -------------------------------------------------------------


def _produce(stream: str, spool: str, p: int, batches: int, per_batch: int) -> None:
    writer = RedisBatchWriter(spool, f"p{p}", "jsonl", False, REDIS_URL, stream)
    start = p * 100_000
    for b in range(batches):
        first = start + b * per_batch
        writer.write([task(first + i, wf="wf-shared") for i in range(per_batch)])
        time.sleep(0.02)  # spread out: the consumer is loading while producers still write
    assert writer.sent == batches


def _stalling_target(url: str, stall_after: int, marker: str):
    """A PgTarget that hangs inside the transaction of batch ``stall_after + 1``."""
    from provwh.warehouse.pg import PgTarget

    class Spy:
        def __init__(self, tx) -> None:
            self._tx, self.ledger = tx, False

        def __getattr__(self, name: str):
            return getattr(self._tx, name)

        def insert(self, table: str, rows):
            self.ledger = self.ledger or (table == "batches" and bool(rows))
            return self._tx.insert(table, rows)

    class Stalling(PgTarget):
        committed = 0

        @contextmanager
        def transaction(self):
            with super().transaction() as tx:
                spy = Spy(tx)
                yield spy
                if spy.ledger and Stalling.committed >= stall_after:
                    Path(marker).touch()
                    time.sleep(3600)  # killed here, uncommitted
            Stalling.committed += spy.ledger

    return Stalling(url)


def _consume(url: str, stream: str, work: str, name: str, stall_after: int, marker: str) -> None:
    from provwh.warehouse.pg import PgTarget
    from provwh.warehouse.redis_consumer import run_redis_consumer

    target = _stalling_target(url, stall_after, marker) if marker else PgTarget(url)
    stats = run_redis_consumer(
        None, url=REDIS_URL, stream=stream, work_dir=work, name=name, targets=[target],
        min_idle=0.5, per_read=4, poll_interval=0.05, group_records=1,
    )  # fmt: skip
    print(stats.summary(), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "produce":
        _produce(args[0], args[1], *map(int, args[2:5]))
    elif mode == "consume":
        _consume(args[0], args[1], args[2], args[3], int(args[4]), args[5])
    else:
        raise SystemExit(f"unknown mode {mode}")
