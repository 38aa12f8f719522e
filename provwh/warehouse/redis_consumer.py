"""The broker transport, consumer side: loads the batches of a Redis Stream exactly once.

Entries (see ``transport.redis_stream``) are read with a consumer group (``XREADGROUP``), so
any number of consumers share the stream and an entry is delivered to one of them at a time.
Each payload is staged as a file under ``<work_dir>/staging/`` (under its batch name, so the
ledger sees the same source and content hash as through the spool folder), loaded by the
``Loader`` (one transaction per batch, ledger row included), and only then acknowledged
(``XACK``) and deleted from the stream (``XDEL``: the payloads would otherwise stay in Redis).

Exactly-once: an entry not acknowledged stays in the group's pending list. A pass first
re-reads this consumer's own pending entries (a batch that failed last pass), then claims the
entries of other consumers idle for ``min_idle`` seconds (``XAUTOCLAIM``: a consumer killed
mid-batch; its transaction was rolled back, or committed and then skipped via the ledger when
the kill came between commit and ack), then reads new entries. A batch loaded twice is a
no-op, so redelivery is always safe, even to a consumer that is merely slow.

A batch that cannot be loaded (unreadable payload, or refused by the database
``MAX_FAILURES`` times) is set aside in ``<work_dir>/rejected/`` with a ``.error.txt`` and
acknowledged: the file is then its only copy. Needs Redis >= 6.2 (``XAUTOCLAIM``). With
``delete_acked`` (default) entries are deleted once acknowledged: do not share the stream with
another consumer group. A stable ``name`` lets a restarted consumer take its own pending
entries back at once; otherwise (default ``<host>-<pid>``) they wait ``min_idle``.

``RedisConsumer`` has ``SpoolConsumer``'s interface: ``start()``, ``stop(drain=True)``,
``load_pending()``, ``check()``, ``stats``; ``run_redis_consumer`` runs one in the foreground
until SIGINT/SIGTERM; ``CombinedConsumer`` runs it beside a ``SpoolConsumer``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from provwh.core.config import Settings
from provwh.core.redact import redact_url
from provwh.transport.batches import SUFFIXES, write_atomic
from provwh.transport.redis_stream import (
    DEFAULT_STREAM,
    DEFAULT_URL,
    broker_errors,
    connect,
)
from provwh.transport.spool import _SAFE, REJECTED, _host_tag
from provwh.warehouse.consumer import MAX_FAILURES
from provwh.warehouse.engines import Target, targets_from_settings
from provwh.warehouse.follow import Follower
from provwh.warehouse.loader import LoadStats, RetryPolicy
from provwh.warehouse.reader import DEFAULT_MAX_RECORDS, BatchFileError

log = logging.getLogger("provwh.warehouse")

DEFAULT_GROUP = "provwh-loaders"
MIN_IDLE = 60.0  # seconds an entry stays with a silent consumer before another takes it
PER_READ = 100  # entries staged per pass
_STAGING = "staging"


def _setting(settings: Settings | None, key: str, default: Any) -> Any:
    """A setting the schema may not have yet (older config): its default then."""
    if settings is None:
        return default
    try:
        return settings.get(key) or default
    except KeyError:
        return default


class RedisConsumer(Follower):
    thread_name = "provwh-redis-consumer"

    """Loads the batches of a Redis Stream into the databases ``settings`` enable."""

    def __init__(
        self,
        settings: Settings | None = None,
        url: str | None = None,
        stream: str | None = None,
        group: str = DEFAULT_GROUP,
        name: str | None = None,
        work_dir: str | os.PathLike | None = None,
        poll_interval: float = 0.2,
        min_idle: float = MIN_IDLE,
        per_read: int = PER_READ,
        delete_acked: bool = True,
        retry: RetryPolicy | None = None,
        max_records: int = DEFAULT_MAX_RECORDS,
        targets: list[Target] | None = None,
        lineage_interval: float = 2.0,
        group_records: int | None = None,
        client: Any = None,
        workers: int | None = None,
    ) -> None:
        self.settings = settings
        self.url = url or _setting(settings, "buffer.redis_url", DEFAULT_URL)
        self.stream = stream or _setting(settings, "buffer.redis_stream", DEFAULT_STREAM)
        self.group = group
        self.name = name or f"{_host_tag()}-{os.getpid()}"
        if work_dir is None:
            spool = _setting(settings, "buffer.spool_dir", ".provwh/spool")
            work_dir = os.path.join(spool, "redis")
        self.work_dir = Path(os.path.abspath(os.fspath(work_dir)))
        (self.work_dir / REJECTED).mkdir(parents=True, exist_ok=True)
        (self.work_dir / _STAGING).mkdir(parents=True, exist_ok=True)
        self._staging = Path(
            tempfile.mkdtemp(prefix=_SAFE.sub("_", self.name) + ".", dir=self.work_dir / _STAGING)
        )
        self.min_idle = min_idle
        self.per_read = per_read
        self.delete_acked = delete_acked
        self._client = client
        if targets is None:
            if settings is None:
                raise ValueError("RedisConsumer needs settings or targets")
            targets = targets_from_settings(settings)
        self._init_follower(
            targets, retry, max_records, group_records, poll_interval, lineage_interval, workers
        )
        self._group_ready = False
        self._last_claim = 0.0
        self._last_read = 0  # entries the last pass read
        self._underived = True

    # -- broker -----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.url, timeout=5.0)
        return self._client

    def _ensure_group(self) -> None:
        """Create the group (and the stream) if missing: reading from its very first entry."""
        if self._group_ready:
            return
        import redis

        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _read(self, block: float | None) -> list[tuple[str, dict]]:
        """Entries to load this pass: our own pending, then dead consumers', then new ones."""
        self._ensure_group()
        r, out, seen = self.client, [], set()

        def add(entries: Any) -> None:
            for entry_id, fields in entries or []:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                if eid not in seen:
                    seen.add(eid)
                    out.append((eid, fields))

        for _stream, entries in (
            r.xreadgroup(self.group, self.name, {self.stream: "0"}, count=self.per_read) or []
        ):
            add(entries)
        now = time.monotonic()
        if len(out) < self.per_read and now - self._last_claim >= min(self.min_idle, 5.0):
            self._last_claim = now
            cursor = "0-0"
            while len(out) < self.per_read:
                reply = r.xautoclaim(
                    self.stream, self.group, self.name, int(self.min_idle * 1000),
                    start_id=cursor, count=self.per_read - len(out),
                )  # fmt: skip
                cursor, claimed = reply[0], reply[1]
                add(claimed)
                if cursor in (b"0-0", "0-0"):
                    break
        if len(out) < self.per_read:
            ms = None if block is None or out else max(1, int(block * 1000))
            for _stream, entries in (
                r.xreadgroup(
                    self.group,
                    self.name,
                    {self.stream: ">"},
                    count=self.per_read - len(out),
                    block=ms,
                )
                or []
            ):
                add(entries)
        return out

    def _ack(self, entry_id: str) -> None:
        """Acknowledge a committed (or set aside) batch; a lost ack only costs a no-op replay."""
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.xack(self.stream, self.group, entry_id)
            if self.delete_acked:
                pipe.xdel(self.stream, entry_id)
            pipe.execute()
        except broker_errors() as exc:
            log.warning("provwh: acknowledging %s failed (%s); it will be replayed", entry_id, exc)

    # -- Follower hooks -------------------------------------------------------------------
    def check(self) -> None:
        """Open every database once (``SchemaError`` raises) and reach the broker (logged)."""
        self.check_databases()
        try:
            self._ensure_group()
        except broker_errors() as exc:
            log.warning("provwh: Redis at %s not reachable yet (%s)", redact_url(self.url), exc)

    def _follow_pass(self) -> float:
        self.load_pending(derive=self._derive_due(), block=self.poll_interval)
        return 0.0 if self._last_read else self.poll_interval

    def _drain(self) -> None:
        """Load what the stream holds for us; entries not loaded stay in Redis (nothing lost)."""
        try:
            self.load_pending()
            while self._last_read:  # until the stream has nothing more for us
                self.load_pending()
        except broker_errors() as exc:  # entries stay in Redis for the next consumer
            log.warning("provwh: Redis unreachable while draining (%s)", exc)

    def _leave_where(self) -> str:
        return f"the stream {self.stream}"

    def _close(self) -> None:
        self.loader.close()
        shutil.rmtree(self._staging, ignore_errors=True)
        if self._client is not None:
            self._client.close()
            self._client = None

    def _pass_failed(self, exc: BaseException) -> None:
        if isinstance(exc, broker_errors()):  # reconnect next pass
            self._client = None
            self._group_ready = False
        log.error("provwh: loading the stream %s failed: %s", self.stream, exc)

    # -- passes -----------------------------------------------------------------------------
    def load_pending(self, derive: bool = True, block: float | None = None) -> LoadStats:
        """One pass: stage up to ``per_read`` entries, load them, acknowledge the committed.

        ``block``: seconds to wait for new entries when there is nothing else to do.
        """
        with self._pass_lock:
            t0 = time.perf_counter()
            entries = self._read(block)
            self._last_read = len(entries)
            paths: list[Path] = []
            ids: dict[str, str] = {}
            for entry_id, fields in entries:
                path = self._stage(entry_id, fields)
                if path is not None:
                    paths.append(path)
                    ids[str(path)] = entry_id
            stats = LoadStats()
            with self._pass_opened(bool(paths), derive):
                if paths:
                    try:
                        stats = self.loader.load_files(
                            paths,
                            rejects_for=self._rejects_path,
                            on_done=lambda p: self._done(p, ids[str(p)]),
                            on_error=lambda p, exc: self._error(Path(p), ids[str(p)], exc),
                        )
                    finally:
                        for path in paths:
                            path.unlink(missing_ok=True)
                self._derive_after(stats, derive)
            stats.seconds = time.perf_counter() - t0
            self.stats.add(stats)
            return stats

    def _rejects_path(self, path: str | os.PathLike) -> Path:
        return self.work_dir / REJECTED / f"{Path(path).name}.rejects.jsonl"

    def _stage(self, entry_id: str, fields: dict | None) -> Path | None:
        """The entry's payload as a batch file; None for an entry that carries no batch."""
        fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in (fields or {}).items()}
        payload = fields.get("payload")
        if payload is None:  # deleted meanwhile (another consumer finished it) or malformed
            if fields:
                self._set_aside(f"{entry_id}.entry", b"", entry_id, "entry without a payload")
            self._ack(entry_id)
            return None
        fmt = fields.get("format", b"jsonl")
        fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
        name = fields.get("name", b"")
        name = _SAFE.sub("_", name.decode() if isinstance(name, bytes) else str(name))
        name = name.lstrip(".") or entry_id.replace("-", "_")
        suffix = SUFFIXES.get(fmt, SUFFIXES["jsonl"])
        if not name.endswith(suffix):
            name += suffix
        path = self._staging / name
        write_atomic(path, payload, fsync=False)
        return path

    def _done(self, path: str, entry_id: str) -> None:
        self._failures.pop(entry_id, None)
        self._ack(entry_id)

    def _error(self, path: Path, entry_id: str, exc: BaseException) -> None:
        """A batch that failed: set aside and acknowledge, or (to retry next pass) raise."""
        if isinstance(exc, BatchFileError):
            self._reject(path, entry_id, exc)
            return
        if isinstance(exc, OSError):
            raise exc
        failures = self._failures.get(entry_id, 0) + 1
        if failures < MAX_FAILURES:  # the database refused it: retry a few passes
            self._failures[entry_id] = failures
            raise exc
        self._failures.pop(entry_id, None)
        self._reject(path, entry_id, exc)

    def _reject(self, path: Path, entry_id: str, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = exc
        log.error("provwh: batch %s (entry %s) set aside in %s: %s", path.name, entry_id,
                  self.work_dir / REJECTED, exc)  # fmt: skip
        self._set_aside(path.name, path.read_bytes(), entry_id, f"{type(exc).__name__}: {exc}")
        self._ack(entry_id)

    def _set_aside(self, name: str, data: bytes, entry_id: str, reason: str) -> None:
        dest = self.work_dir / REJECTED / name
        text = f"stream {self.stream} entry {entry_id}: {reason}\n".encode()
        write_atomic(dest.with_name(dest.name + ".error.txt"), text, fsync=True)
        write_atomic(dest, data, fsync=True)


def run_redis_consumer(
    settings: Settings,
    once: bool = False,
    stop_event: threading.Event | None = None,
    on_start: Any = None,
    **kwargs: Any,
) -> LoadStats:
    """Follow the stream in the foreground until SIGINT/SIGTERM (or one pass: ``once``)."""
    consumer = RedisConsumer(settings, **kwargs)
    return consumer.run_foreground(once=once, stop_event=stop_event, on_start=on_start)


class CombinedConsumer:
    """Several consumers as one (a stream and the spool folder its producers fall back to).

    The controller starts and stops one consumer; with the Redis transport it needs two.
    """

    def __init__(self, consumers: list[Any]) -> None:
        self.consumers = consumers

    def start(self) -> CombinedConsumer:
        for consumer in self.consumers:
            consumer.start()
        return self

    def load_pending(self) -> LoadStats:
        stats = LoadStats()
        for consumer in self.consumers:
            stats.add(consumer.load_pending())
        return stats

    def stop(self, drain: bool = True, timeout: float | None = None) -> LoadStats:
        """Stop each (all of them, even when one fails; ``timeout`` shared); returns the stats
        of all. After a Ctrl+C in one's drain, the others stop without draining."""
        stats, error = LoadStats(), None
        deadline = None if timeout is None else time.monotonic() + timeout
        for consumer in self.consumers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                stats.add(consumer.stop(drain=drain, timeout=left))
            except KeyboardInterrupt as exc:
                error, drain = exc, False
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error
        return stats
