"""The spool folder's ``done/``: bounded in age and size (``buffer.done_retention``,
``buffer.done_max_mb``) by the consumer, the in-process loader and the Redis copies; a dump
that lost batches to pruning says so and is written without them."""

from __future__ import annotations

import logging
import os
import time
import uuid

import orjson
import pytest
from warehouse_helpers import count, task, workflow

from provwh.core.config import load_settings
from provwh.transport.spool import CLAIMED, DONE, SpoolWriter, prune_done
from provwh.warehouse.consumer import SpoolConsumer

KB = 1 << 10
MB = 1 << 20


def make_done(folder, sizes: list[int], t0: float | None = None) -> list[str]:
    """Batch files in ``folder`` of these sizes, one second apart, the first the oldest."""
    os.makedirs(folder, exist_ok=True)
    t0 = time.time() - 10 * len(sizes) if t0 is None else t0
    names = []
    for i, size in enumerate(sizes):
        name = f"{int(t0 * 1000) + i:013d}-h-1-run{i % 2}-{i:06d}.jsonl"
        path = os.path.join(folder, name)
        with open(path, "wb") as fh:
            fh.write(b"x" * size)
        os.utime(path, (t0 + i, t0 + i))
        names.append(name)
    return names


def test_prune_done_deletes_the_oldest_beyond_the_size_bound(tmp_path):
    names = make_done(tmp_path, [100 * KB] * 10)
    removed, left = prune_done(tmp_path, retention=3600, max_bytes=450 * KB)
    assert (removed, left) == (6, 400 * KB)
    assert sorted(os.listdir(tmp_path)) == names[6:]
    assert prune_done(tmp_path, retention=3600, max_bytes=450 * KB) == (0, 400 * KB)


def test_prune_done_by_age_spares_the_kept_ones_but_not_past_the_size_bound(tmp_path):
    old = make_done(tmp_path / "a", [10 * KB] * 4, t0=time.time() - 7200)  # 2 hours old
    for name in old:
        os.rename(tmp_path / "a" / name, tmp_path / name)
    new = make_done(tmp_path / "b", [10 * KB] * 2)
    for name in new:
        os.rename(tmp_path / "b" / name, tmp_path / name)
    kept_run = [n for n in old if "-run1-" in n]
    assert len(kept_run) == 2
    removed, left = prune_done(tmp_path, 3600, 1 * MB, keep=lambda n: "-run1-" in n)
    assert (removed, left) == (2, 40 * KB)
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".jsonl")) == sorted(kept_run + new)
    # the size bound goes first: the kept ones are the oldest, they go first
    removed, left = prune_done(tmp_path, 3600, 25 * KB, keep=lambda n: "-run1-" in n)
    assert (removed, left) == (2, 20 * KB)
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".jsonl")) == sorted(new)
    assert prune_done(tmp_path, 0, None) == (2, 0)


def _settings(duck_path, **env):
    return load_settings(
        env={"PROVWH_DUCKDB_PATH": str(duck_path), **{k: str(v) for k, v in env.items()}}
    )


def _padded_batches(spool, n: int) -> list[str]:
    """``n`` batches of about 300 KB (one task each): three fit in 1 MB, four do not."""
    writer = SpoolWriter(spool, "big", "jsonl", fsync=False)
    names = [writer.write([task(i, used={"pad": "p" * 300_000})]) for i in range(n)]
    for name in names:
        assert 262_144 < os.path.getsize(spool / name) < 349_525
    return names


def test_consumer_keeps_done_under_done_max_mb(tmp_path, duck_path):
    spool = tmp_path / "spool"
    names = _padded_batches(spool, 10)
    settings = _settings(duck_path, PROVWH_DONE_MAX_MB=1)
    consumer = SpoolConsumer(spool, settings)
    assert (consumer.retention, consumer.done_max_bytes) == (3600.0, MB)
    stats = consumer.load_pending()
    assert stats.batches == 10 and count(duck_path, "tasks") == 10
    assert sorted(os.listdir(spool / DONE)) == names[7:]  # the three newest
    names += _padded_batches(spool, 2)  # two more: two more of the oldest go
    consumer.load_pending()
    consumer.stop()
    assert sorted(os.listdir(spool / DONE)) == names[9:]
    assert os.listdir(spool / CLAIMED) == []


def test_consumer_retention_from_the_settings(tmp_path, duck_path):
    spool = tmp_path / "spool"
    SpoolWriter(spool, "r", "jsonl", fsync=False).write([task(1)])
    consumer = SpoolConsumer(spool, _settings(duck_path, PROVWH_DONE_RETENTION=0))
    consumer.load_pending()
    consumer.stop()
    assert os.listdir(spool / DONE) == [] and count(duck_path, "tasks") == 1
    spool2 = tmp_path / "spool2"
    SpoolWriter(spool2, "r", "jsonl", fsync=False).write([task(1)])
    consumer = SpoolConsumer(spool2, _settings(duck_path))
    consumer.load_pending()
    consumer.stop()
    assert len(os.listdir(spool2 / DONE)) == 1


def _capture(tmp_path, set_env, n: int, **env) -> tuple[str, list[dict]]:
    """A run of ``n`` 300 KB tasks loaded in-process, one record a batch (the workflow's start,
    each task, the workflow's end); its dump's records."""
    from provwh import Flowcept, flowcept_task

    dump = tmp_path / "buffer.jsonl"
    set_env(
        PROVWH_DUCKDB_PATH=str(tmp_path / "w.duckdb"),
        PROVWH_SPOOL_DIR=str(tmp_path / "spool"),
        PROVWH_DUMP_BUFFER_PATH=str(dump),
        PROVWH_FLUSH_SIZE="1",
        **env,
    )

    @flowcept_task
    def big(i):
        return {"pad": "p" * 300_000, "i": i}

    with Flowcept(workflow_name="retention"):
        for i in range(n):
            big(i)
    return str(tmp_path / "w.duckdb"), [orjson.loads(x) for x in dump.read_bytes().splitlines()]


def test_the_in_process_loader_keeps_its_runs_batches_for_the_dump(tmp_path, set_env, caplog):
    duck, records = _capture(tmp_path, set_env, 4, PROVWH_DONE_RETENTION="0")
    assert count(duck, "tasks") == 4
    assert [r["type"] for r in records] == ["workflow"] + ["task"] * 4
    assert "no longer in" not in caplog.text


def test_a_dump_without_the_batches_the_size_bound_pruned_says_so(tmp_path, set_env, caplog):
    caplog.set_level(logging.WARNING, logger="provwh")
    duck, records = _capture(tmp_path, set_env, 5, PROVWH_DONE_MAX_MB="1")
    assert count(duck, "tasks") == 5
    # 7 batches: the workflow's start, 5 tasks of 300 KB, the workflow's end; 1 MB holds the
    # newest 3 tasks and the end
    assert len(os.listdir(tmp_path / "spool" / DONE)) == 4
    assert [r["type"] for r in records] == ["workflow"] + ["task"] * 3
    tasks = [r for r in records if r["type"] == "task"]
    assert [r["generated"]["i"] for r in tasks] == [2, 3, 4]  # the dump is written without them
    (warning,) = [r.message for r in caplog.records if "no longer in" in r.message]
    assert warning.startswith("provwh: 3 batches of this run (") and (
        "pruned from done/ (buffer.done_retention, buffer.done_max_mb)" in warning
    )


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    url = os.environ.get("PROVWH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"no Redis server at {url} for the broker tests: {exc}")
    key = f"provwh:test:{uuid.uuid4().hex[:12]}"
    yield client, url, key
    client.delete(key)
    client.close()


def test_redis_copies_are_bounded_too(tmp_path, redis_client):
    from provwh.transport.redis_stream import RedisBatchWriter

    client, url, key = redis_client
    spool = tmp_path / "spool"
    others = make_done(spool / DONE, [300 * KB] * 2, t0=time.time() - 7200)  # old, not ours
    writer = RedisBatchWriter(spool, "mine", "jsonl", fsync=False, url=url, stream=key,
                              retention=3600, max_bytes=MB)  # fmt: skip
    assert os.listdir(spool / DONE) == []  # past the retention: pruned at start
    others = make_done(spool / DONE, [300 * KB] * 2)  # recent: kept, until the bound
    names = [writer.write([workflow(f"w{i}", pad="p" * 300_000)]) for i in range(4)]
    writer.close()
    assert client.xlen(key) == 4
    assert sorted(os.listdir(spool / DONE)) == sorted(names[1:])  # 3 newest: 3 x 300 KB
    assert not set(others) & set(os.listdir(spool / DONE))
