"""The broker transport, producer side: batches appended to a Redis Stream.

For nodes that share no file system with the loader. ``RedisBatchWriter`` has the interface of
``spool.SpoolWriter`` (``write(records) -> name``, ``names``, ``spool_dir``,
``reset_after_fork``), so the controller can use either. Each batch is one stream entry with
the fields ``name`` (the spool batch name), ``format`` (``jsonl`` / ``parquet``) and
``payload`` (the encoded batch, exactly the bytes a spool file would hold, hence the same
content hash in the warehouse ledger).

Durability: a batch is on the broker once ``XADD`` returns. The stream is never trimmed by
producers (trimming could drop batches not loaded yet); the consumer deletes entries once they
are committed and acknowledged (``warehouse.redis_consumer``).

Broker down: the batch is written into the local spool folder instead (``SpoolWriter``'s file,
fsynced as configured), a warning is logged once per writer, and Redis is tried again after
``retry_interval`` seconds. Nothing is lost; a ``SpoolConsumer`` (``provwh consume``) on that
folder loads the fallen-back batches. An ``XADD`` whose reply was lost (timeout) may have
landed too: the batch then exists twice with the same bytes, and the ledger loads it once.

Dumps and ``get_buffer()``: the controller reads a run's batches back from the spool folder
(``spool.iter_raw_lines``, which looks in the folder, ``claimed/`` and ``done/``). So that both
work unchanged, a batch sent to Redis is also kept as a local copy in ``<spool_dir>/done/``
(not fsynced: Redis holds the durable copy) unless ``keep_copy`` is False. ``done/`` is
bounded as a consumer bounds it (``spool.prune_done``: ``buffer.done_retention`` seconds,
``buffer.done_max_mb``): pruned when a writer starts, and whenever the copies it writes take
the folder past the size bound; the writer's own run's copies are kept past the retention
(its dump reads them at stop), not past the size bound. A fallen-back batch lies in the spool
folder itself, where the same lookup finds it.

``redis`` is imported lazily: ``import provwh`` never needs it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from provwh.core.redact import redact_url
from provwh.core.serialize import Lines
from provwh.transport.batches import (
    PARQUET,
    SUFFIXES,
    encode_jsonl,
    encode_parquet,
    write_atomic,
)
from provwh.transport.spool import (
    _SAFE,
    DONE,
    DONE_MAX_BYTES,
    DONE_RETENTION,
    _host_tag,
    prune_done,
    run_names,
)

log = logging.getLogger("provwh.transport")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_STREAM = "provwh:batches"
RETRY_INTERVAL = 5.0  # seconds between attempts to reach a broker found down


def require_redis() -> Any:
    """The ``redis`` module, or an error saying how to get it (it is an optional dependency)."""
    try:
        import redis
    except ImportError as exc:
        raise ImportError(
            "buffer.transport 'redis' needs the redis package: pip install redis"
        ) from exc
    return redis


def connect(url: str, timeout: float = 2.0) -> Any:
    """A Redis client for ``url`` that fails fast when the broker is down (no hang)."""
    redis = require_redis()
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=max(timeout, 10.0),
        health_check_interval=30,
    )


def broker_errors() -> tuple[type[BaseException], ...]:
    """Errors meaning "the broker is unreachable now" (retry later), not "bad request"."""
    import redis

    return (redis.ConnectionError, redis.TimeoutError, OSError)


class RedisBatchWriter:
    """Appends one producer's batches to a Redis Stream; the local spool folder when it is down."""

    def __init__(
        self,
        spool_dir: str | os.PathLike,
        run_id: str,
        fmt: str,
        fsync: bool,
        url: str = DEFAULT_URL,
        stream: str = DEFAULT_STREAM,
        keep_copy: bool = True,
        retry_interval: float = RETRY_INTERVAL,
        client: Any = None,
        retention: float = DONE_RETENTION,
        max_bytes: int = DONE_MAX_BYTES,
    ) -> None:
        self.spool_dir = os.path.abspath(os.fspath(spool_dir))
        os.makedirs(os.path.join(self.spool_dir, DONE), exist_ok=True)
        self.run_id = _SAFE.sub("_", run_id)[:32]
        self.fmt = fmt
        self.fsync = fsync
        self.url = url
        self.stream = stream
        self.keep_copy = keep_copy
        self.retry_interval = retry_interval
        self.names: list[str] = []
        self.sent = 0  # batches on the broker
        self.fallen_back = 0  # batches written to the spool folder instead
        self._seq = 0
        self._host = _host_tag()
        if client is None:
            require_redis()  # fail at start, not at the first flush
        self._client = client
        self._down_until = 0.0
        self._warned = False
        self._lock = threading.Lock()
        self.retention = retention
        self.max_bytes = max_bytes
        self._done_bytes = 0  # in done/ at the last pruning, and the copies written since
        if keep_copy:
            self._prune()

    def _prune(self) -> None:
        """Bound ``done/`` (``spool.prune_done``), keeping this run's copies past the
        retention."""
        tag = f"-{self.run_id}-"
        _removed, self._done_bytes = prune_done(
            os.path.join(self.spool_dir, DONE),
            self.retention,
            self.max_bytes,
            keep=lambda name: tag in name,
        )

    def reset_after_fork(self) -> None:
        """A forked child writes its own batches (redis-py reconnects after a fork itself)."""
        self.names = []
        self._seq = 0
        self.sent = self.fallen_back = 0
        self._lock = threading.Lock()  # another thread may have held it at the fork

    def run_batches(self) -> list[tuple[str, list[str]]]:
        """(folder, batch names) of this run: the local copies in the spool folder."""
        return [(self.spool_dir, run_names(self.spool_dir, self.run_id, self.names))]

    def _next_name(self) -> str:
        self._seq += 1
        return (
            f"{int(time.time() * 1000):013d}-{self._host}-{os.getpid()}-{self.run_id}-"
            f"{self._seq:06d}{SUFFIXES[self.fmt]}"
        )

    def write(self, records: Iterable[dict[str, Any]] | Lines) -> str:
        """Send one batch; returns its name (the same whichever way it went)."""
        with self._lock:
            name = self._next_name()
            data = encode_parquet(records) if self.fmt == PARQUET else encode_jsonl(records)
            if self._send(name, data):
                if self.keep_copy:
                    write_atomic(os.path.join(self.spool_dir, DONE, name), data, fsync=False)
                    self._done_bytes += len(data)
                    if self._done_bytes > self.max_bytes:
                        self._prune()
            else:
                write_atomic(os.path.join(self.spool_dir, name), data, fsync=self.fsync)
                self.fallen_back += 1
            self.names.append(name)
            return name

    def _send(self, name: str, data: bytes) -> bool:
        """XADD the batch; False (after one warning per writer) when the broker is down."""
        now = time.monotonic()
        if now < self._down_until:
            return False
        try:
            if self._client is None:
                self._client = connect(self.url)
            self._client.xadd(self.stream, {"name": name, "format": self.fmt, "payload": data})
        except broker_errors() as exc:
            self._down_until = now + self.retry_interval
            if not self._warned:
                self._warned = True
                log.warning(
                    "provwh: Redis at %s unreachable (%s): batches go to the spool folder %s "
                    "until it is back; load them with `provwh consume --spool %s`",
                    redact_url(self.url), exc, self.spool_dir, self.spool_dir,
                )  # fmt: skip
            return False
        if self._down_until:
            self._down_until = 0.0
            log.info("provwh: Redis at %s is back; sending batches to it", redact_url(self.url))
        self.sent += 1
        return True

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a broken connection must not mask the caller's state
                pass
            self._client = None
