"""Stopping under real use (issue 19): a database that cannot be reached at ``stop()``, Ctrl+C
twice while a run's batches load, SIGTERM to ``provwh consume`` with a backlog.

Every case runs real processes, bounds how long the stop takes, and ends with what was left
loaded later: every task exactly once.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import orjson
import psycopg
import pytest
from warehouse_helpers import count, query, task, wait_for

import provwh
from provwh.core.text import plural
from provwh.transport.batches import list_batches
from provwh.transport.spool import SpoolWriter

REPO = str(Path(provwh.__file__).resolve().parent.parent)
TESTS = str(Path(__file__).resolve().parent)
REDIS_URL = os.environ.get("PROVWH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLOSED_PORT_URL = "postgresql://postgres@127.0.0.1:1/nowhere"  # refused at once


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}
    env["PYTHONPATH"] = os.pathsep.join([REPO, TESTS, env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _provwh(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "provwh.cli", *args], cwd=cwd, env=_env(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


def _left(spool: Path) -> list[str]:
    """The batches not loaded: ready, or claimed by a loader that stopped."""
    return [p.name for p in list_batches(spool) + list_batches(spool / "claimed")]


def _dump(folder: Path) -> tuple[list[dict], list[dict]]:
    records = [
        orjson.loads(x) for x in (folder / "flowcept_buffer.jsonl").read_bytes().splitlines()
    ]
    return (
        [r for r in records if r["type"] == "task"],
        [r for r in records if r["type"] == "workflow"],
    )


def _loaded(location: str) -> list[tuple]:
    """Tasks (count, distinct), their statuses, the workflows: what a load must give once."""
    return [
        *query(location, "SELECT count(*), count(DISTINCT task_id) FROM tasks"),
        *query(location, "SELECT status, count(*) FROM tasks GROUP BY status ORDER BY status"),
        *query(location, "SELECT name, status FROM workflows"),
    ]


# --- a database that cannot be reached at stop() (item 7) ----------------------------------------

CAPTURE = textwrap.dedent(
    """
    import sys, time
    from provwh import Flowcept, flowcept_task

    @flowcept_task(output_names="y")
    def step(x):
        return x * 2

    with Flowcept(workflow_name="stop"):
        for i in range(int(sys.argv[1])):
            step(i)
        t0 = time.monotonic()
    print(f"stop took {time.monotonic() - t0:.2f} s", flush=True)
    """
)

# another process writing the DuckDB file: it holds the file's lock until killed
LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(600)
    """
)


class LockHolder:
    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline() == "locked\n"

    def release(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def lock_holders():
    holders: list[LockHolder] = []
    yield lambda path: holders.append(LockHolder(path)) or holders[-1]
    for holder in holders:
        holder.release()


def _capture_left_behind(folder: Path, tasks: int, timeout: int, target: str, env: dict) -> Path:
    """Run CAPTURE with a database it cannot reach: it ends in time, exit 0, says once what it
    left; the dump is whole and the spool holds every record of the run. Returns the spool."""
    proc = subprocess.run(
        [sys.executable, "-c", CAPTURE, str(tasks)], cwd=folder, capture_output=True, text=True,
        timeout=120, env=_env(PROVWH_STOP_TIMEOUT=str(timeout), **env),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    took = float(re.fullmatch(r"stop took (\d+\.\d+) s\n", proc.stdout).group(1))
    assert took < timeout + 3, proc.stderr[-3000:]
    spool = folder / ".provwh" / "spool"
    left = _left(spool)
    assert left and list_batches(spool / "done") == []
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("provwh: gave up")]
    assert len(lines) == 1, proc.stderr[-3000:]
    batches = f"{len(left)} batch" if len(left) == 1 else f"{len(left)} batches"
    records = f"{tasks + 2:,} records"  # the workflow record is written at start and at stop
    assert re.fullmatch(
        rf"provwh: gave up waiting for {re.escape(target)} after {timeout} s at stop \(.+\); "
        rf"{re.escape(str(spool))} holds {batches} \({records}\) of this run: load them later "
        rf"with `provwh load {re.escape(str(spool))}`",
        lines[0],
    ), lines[0]
    task_records, workflows = _dump(folder)
    assert sorted(r["used"]["x"] for r in task_records) == list(range(tasks))
    assert [(w["name"], w["status"]) for w in workflows] == [("stop", "FINISHED")]
    return spool


@pytest.mark.parametrize("timeout", [2, 0])
def test_stop_gives_up_on_a_duckdb_file_another_process_holds(tmp_path, lock_holders, timeout):
    db = tmp_path / "provwh.duckdb"
    holder = lock_holders(db)
    spool = _capture_left_behind(tmp_path, 3000, timeout, f"DuckDB {db}", {})
    holder.release()
    load = _provwh("load", str(spool), cwd=tmp_path)  # the default database: provwh.duckdb
    assert load.returncode == 0, load.stderr
    assert _loaded(str(db)) == [(3000, 3000), ("FINISHED", 3000), ("stop", "FINISHED")]
    again = _provwh("load", str(spool), cwd=tmp_path)
    assert again.stdout.startswith("loaded 0 batches (")
    assert _loaded(str(db)) == [(3000, 3000), ("FINISHED", 3000), ("stop", "FINISHED")]


def test_stop_gives_up_on_a_postgres_server_that_refuses(tmp_path, pg_url):
    env = {"PROVWH_POSTGRES_URL": CLOSED_PORT_URL, "PROVWH_DUCKDB_ENABLED": "false"}
    spool = _capture_left_behind(tmp_path, 2000, 1, f"PostgreSQL {CLOSED_PORT_URL}", env)
    load = _provwh("load", str(spool), "--postgres", pg_url, cwd=tmp_path)
    assert load.returncode == 0, load.stderr
    assert _loaded(pg_url) == [(2000, 2000), ("FINISHED", 2000), ("stop", "FINISHED")]


def test_with_the_redis_transport_the_stop_line_names_the_stream(
    tmp_path, pg_url, redis_stream, set_env, caplog
):
    from provwh import Flowcept, flowcept_task
    from provwh.warehouse.pg import PgTarget
    from provwh.warehouse.redis_consumer import RedisConsumer

    client, stream = redis_stream
    set_env(PROVWH_BUFFER_TRANSPORT="redis", PROVWH_REDIS_URL=REDIS_URL,
            PROVWH_REDIS_STREAM=stream, PROVWH_POSTGRES_URL=CLOSED_PORT_URL,
            PROVWH_DUCKDB_ENABLED="false", PROVWH_STOP_TIMEOUT="0")  # fmt: skip

    @flowcept_task(output_names="y")
    def step(x):
        return x * 2

    with caplog.at_level("ERROR", logger="provwh"):
        with Flowcept(workflow_name="redis"):
            for i in range(100):
                step(i)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        f"provwh: gave up waiting for PostgreSQL {CLOSED_PORT_URL} after 0 s at stop "
        '(connection failed: connection to server at "127.0.0.1", port 1 failed: Connection '
        f"refused); its batches stay in the Redis stream {stream} (unacknowledged): "
        "`provwh consume --redis` loads them"
    ]
    later = RedisConsumer(url=REDIS_URL, stream=stream, work_dir=tmp_path / "work",
                          targets=[PgTarget(pg_url)], min_idle=0.0)  # fmt: skip
    later.load_pending()
    later.stop(drain=True)
    assert client.xlen(stream) == 0
    assert _loaded(pg_url) == [(100, 100), ("FINISHED", 100), ("redis", "FINISHED")]


@pytest.mark.parametrize("value", ["-1", "inf", "soon"])
def test_the_stop_timeout_is_a_finite_number_of_seconds(value):
    from provwh.core.config import SettingsError, load_settings

    with pytest.raises(SettingsError, match=r"^databases.stop_timeout: expected a "):
        load_settings(env={"PROVWH_STOP_TIMEOUT": value})


def test_the_stop_timeout_defaults_to_30_s_and_takes_0():
    from provwh.core.config import load_settings

    assert load_settings(env={}).get("databases.stop_timeout") == 30.0
    assert load_settings(env={"PROVWH_STOP_TIMEOUT": "0"}).get("databases.stop_timeout") == 0.0


# --- Ctrl+C twice while the run's batches load (item 6) ------------------------------------------

CTRL_C = textwrap.dedent(
    """
    import signal, sys, time
    # as at a terminal: a suite started in the background by a shell without job control
    # has SIGINT ignored, and Python leaves an ignored SIGINT ignored in its children
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from provwh import Flowcept, flowcept_task

    @flowcept_task(output_names="y")
    def step(x):
        return x * 2

    @flowcept_task
    def wait_for_ctrl_c():
        print("ready", flush=True)
        while True:
            time.sleep(0.01)

    with Flowcept(workflow_name="ctrl-c"):
        for i in range(int(sys.argv[1])):
            step(i)
        wait_for_ctrl_c()
    """
)


class Lines:
    """A process's stderr, line by line as it comes (a thread reads it)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, prefix: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                return None
            self.lines.append(line)
            if line.startswith(prefix):
                return line
        return None

    def rest(self) -> list[str]:
        self._thread.join(timeout=10)
        while (line := self._queue.get()) is not None:
            self.lines.append(line)
        return self.lines


@pytest.mark.parametrize("case", ["loading", "duckdb-locked", "postgres-locked", "at-once"])
def test_a_second_ctrl_c_leaves_the_rest_in_the_spool(tmp_path, lock_holders, case, request):
    """Ctrl+C ends the workflow as ERROR and the drain says what it loads; a second Ctrl+C
    leaves at once, the rest in the spool (no SIGABRT from a DuckDB thread at exit): while
    batches load, while a locked DuckDB file is waited for, and while a PostgreSQL
    transaction waits for a lock (its statement is cancelled); and two at once (a locked
    DuckDB file: without the second, stop() would wait 30 s)."""
    spool = tmp_path / ".provwh" / "spool"
    tasks = {"loading": 40_000, "at-once": 40_000}.get(case, 2_000)  # drains of seconds
    env, release = _env(), None
    if case == "loading":  # many small batches: the drain has some left after the one in hand
        env = _env(PROVWH_FLUSH_SIZE="1000")
    if case == "at-once":  # stop() has all of them to flush when the second one comes
        env = _env(PROVWH_FLUSH_SIZE="100000", PROVWH_FLUSH_INTERVAL="1000")
    location = str(tmp_path / "provwh.duckdb")
    if case in ("duckdb-locked", "at-once"):
        release = lock_holders(location).release
    elif case == "postgres-locked":  # another session holds the ledger table locked
        location = request.getfixturevalue("pg_url")
        blocker = psycopg.connect(location.replace("+psycopg", ""), autocommit=True)
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE batches IN ACCESS EXCLUSIVE MODE")
        release = blocker.close
        env = _env(PROVWH_POSTGRES_URL=location, PROVWH_DUCKDB_ENABLED="false")
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C, str(tasks)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    err = Lines(proc.stderr)
    try:
        assert proc.stdout.readline() == "ready\n", err.rest()
        proc.send_signal(signal.SIGINT)
        if case == "at-once":
            time.sleep(0.03)  # the second lands while stop() flushes
        else:
            first = "provwh: loading "
            if case == "duckdb-locked":
                first = f"provwh: DuckDB {location} cannot be reached"
            notice = err.wait_for(first, 15)
            assert notice is not None, err.lines
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        took = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
        if release is not None:
            release()
    lines = err.rest()
    assert proc.returncode == -signal.SIGINT, lines[-20:]  # not SIGABRT
    assert took < 3, (took, lines[-20:])
    assert not [ln for ln in lines if "terminate called" in ln]
    hint = re.escape("; press Ctrl+C again to leave them in the spool folder")
    db = re.escape(f"DuckDB {location}")
    expected = {
        "loading": rf"provwh: loading \d+ batch(es)? into {db}{hint}",
        "duckdb-locked": rf"provwh: {db} cannot be reached: waiting up to 30 s to load "
        rf"\d+ batch(es)?{hint}",
        "postgres-locked": rf"provwh: loading \d+ batch(es)? into PostgreSQL \S+{hint}",
    }
    if case != "at-once":
        assert re.fullmatch(expected[case], notice), notice
    left = _left(spool)
    (said,) = [ln for ln in lines if ln.startswith("provwh: loading stopped by Ctrl+C")]
    match = re.fullmatch(
        rf"provwh: loading stopped by Ctrl\+C; {re.escape(str(spool))} holds (\d+) batch(es)? "
        rf"\(([\d,]+) records\) of this run: load them later with "
        rf"`provwh load {re.escape(str(spool))}`",
        said,
    )
    assert match and int(match.group(1)) == len(left) >= 1, said
    task_records, workflows = _dump(tmp_path)  # the dump is whole all the same
    assert len(task_records) == tasks + 1
    assert [(w["name"], w["status"]) for w in workflows] == [("ctrl-c", "ERROR")]
    to = ["--postgres", location] if case == "postgres-locked" else ["--duckdb", location]
    load = _provwh("load", str(spool), *to, cwd=tmp_path)
    assert load.returncode == 0, load.stderr
    assert _loaded(location) == [
        (tasks + 1, tasks + 1), ("ERROR", 1), ("FINISHED", tasks), ("ctrl-c", "ERROR")
    ]  # fmt: skip


# --- SIGTERM to provwh consume with a backlog (item 8) -------------------------------------------


def _consume(spool: Path, location: str, *extra: str) -> list[str]:
    opt = "--postgres" if location.startswith("postgresql") else "--duckdb"
    return [sys.executable, "-m", "provwh.cli", "consume", "--spool", str(spool), "--poll",
            "0.05", opt, location, *extra]  # fmt: skip


@pytest.fixture(params=["duckdb", "postgres"])
def location(request, tmp_path):
    if request.param == "duckdb":
        return str(tmp_path / "consumed.duckdb")
    return request.getfixturevalue("pg_url")


def _backlog(spool: Path, batches: int, per_batch: int) -> list[str]:
    writer = SpoolWriter(spool, "backlog", "jsonl", fsync=False)
    for b in range(batches):
        writer.write([task(b * per_batch + i) for i in range(per_batch)])
    return writer.names


def _assert_exactly_once(location: str, tasks: int, batches: int) -> None:
    assert query(location, "SELECT count(*), count(DISTINCT task_id) FROM tasks") == [
        (tasks, tasks)
    ]
    assert count(location, "batches") == batches  # one chunk a batch: one ledger row each
    assert count(location, "task_values") == tasks * 6


def test_sigterm_stops_consume_after_the_batch_in_hand(tmp_path, location):
    spool = tmp_path / "spool"
    n_batches, per_batch = 12, 1000
    names = _backlog(spool, n_batches, per_batch)
    proc = subprocess.Popen(
        _consume(spool, location), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: len(list_batches(spool / "done")) >= 1, timeout=60)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert took < 3, (took, err)  # well inside a container's 10 s stop timeout
    print(f"consume stopped {took:.2f} s after SIGTERM")
    assert "provwh: stopping after the batch in hand (SIGTERM again: at once)" in err
    done = [p.name for p in list_batches(spool / "done")]
    assert 1 <= len(done) < n_batches  # the backlog was not loaded whole
    assert sorted(done + _left(spool)) == sorted(names)  # the rest stays, claimed or ready
    assert out.splitlines()[-1].startswith(f"loaded {plural(len(done), 'batch')}: ")
    assert count(location, "tasks") == len(done) * per_batch  # done is exactly what committed

    restart = subprocess.run(
        _consume(spool, location, "--once"), cwd=tmp_path, env=_env(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert restart.returncode == 0, restart.stderr
    assert sorted(p.name for p in list_batches(spool / "done")) == sorted(names)
    assert _left(spool) == []
    _assert_exactly_once(location, n_batches * per_batch, n_batches)


def test_a_second_signal_ends_consume_at_once(tmp_path, pg_url):
    """The batch in hand waits (another session holds the ledger table locked): SIGTERM waits
    for it, a second signal does not; the batch rolled back loads at the next start."""
    spool = tmp_path / "spool"
    names = _backlog(spool, 4, 500)
    libpq = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND NOT granted AND "
        "relation = 'batches'::regclass"
    )
    with psycopg.connect(libpq, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE batches IN ACCESS EXCLUSIVE MODE")
        proc = subprocess.Popen(
            _consume(spool, pg_url), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert wait_for(lambda: query(pg_url, waiting) == [(1,)], timeout=60)
            proc.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert proc.poll() is None  # the batch in hand still waits for the lock
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
            took = time.monotonic() - t0
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert took < 1.5, took
    assert (
        err.splitlines()[-1] == "provwh: stopped at once; the batch in hand loads at the next start"
    )
    assert count(pg_url, "tasks") == 0 and sorted(_left(spool)) == sorted(names)
    restart = subprocess.run(
        _consume(spool, pg_url, "--once"), cwd=tmp_path, env=_env(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert restart.returncode == 0, restart.stderr
    _assert_exactly_once(pg_url, 2000, 4)


@pytest.fixture
def redis_stream():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"no Redis server at {REDIS_URL} for the broker tests: {exc}")
    key = f"provwh:test:{uuid.uuid4().hex[:12]}"
    yield client, key
    client.delete(key)
    client.close()


def test_sigterm_leaves_the_stream_entries_not_loaded_unacknowledged(
    tmp_path, pg_url, redis_stream
):
    from provwh.transport.redis_stream import RedisBatchWriter

    client, stream = redis_stream
    n_batches, per_batch = 12, 1000
    writer = RedisBatchWriter(tmp_path / "producer", "r", "jsonl", False, REDIS_URL, stream)
    for b in range(n_batches):
        writer.write([task(b * per_batch + i) for i in range(per_batch)])
    cmd = _consume(tmp_path / "spool", pg_url, "--redis", REDIS_URL, "--stream", stream,
                   "--name", "stable")  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_for(lambda: count(pg_url, "batches") >= 1, timeout=60)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0 and took < 3, (took, err)
    loaded = count(pg_url, "batches")
    assert 1 <= loaded < n_batches
    assert client.xlen(stream) == n_batches - loaded  # acknowledged entries are deleted
    assert client.xpending(stream, "provwh-loaders")["pending"] >= 1  # read, not acknowledged
    restart = subprocess.run(
        [*cmd, "--once"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert restart.returncode == 0, restart.stderr
    assert client.xlen(stream) == 0
    _assert_exactly_once(pg_url, n_batches * per_batch, n_batches)
