"""``provwh load`` (batch files into the databases, with a progress bar) and ``provwh consume``
(follow a spool folder or a Redis stream until stopped)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from provwh.cli.common import (
    add_target_options,
    error_message,
    print_line,
    settings_of,
    targets_of,
)
from provwh.core.text import plural
from provwh.transport.spool import expand_paths
from provwh.warehouse.errors import LoadError, WarehouseError


class Progress:
    """A one-line progress bar on stderr, shown once a load has run for a second."""

    def __init__(self, total_bytes: int, enabled: bool) -> None:
        self.total = max(total_bytes, 1)
        self.done = 0
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.shown = False

    def advance(self, nbytes: int, stats: Any) -> None:
        self.done += nbytes
        if not self.enabled or time.monotonic() - self.t0 < 1.0:
            return
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        rate = stats.tasks / max(time.monotonic() - self.t0, 1e-9)
        sys.stderr.write(
            f"\r[{bar:<30}] {frac:4.0%} {self.done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB"
            f" {plural(stats.tasks, 'task')} ({rate:,.0f}/s)"
        )
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


# --- provwh load ---------------------------------------------------------------------------------


def _file_failed(path: str, exc: BaseException) -> None:
    """A file that cannot be read, or that a database refuses whole: stop, naming it."""
    message = error_message(exc)
    if os.fspath(path) in message:
        raise exc
    raise LoadError(f"{path}: {message}") from exc


def _load(args: argparse.Namespace) -> int:
    from provwh.warehouse.loader import Loader, RetryPolicy  # sqlalchemy

    files = expand_paths(args.files)
    loader = Loader(
        targets_of(args),
        retry=RetryPolicy(timeout=args.retry_timeout),
        max_records=args.max_records,
        group_records=args.group_records,
        workers=args.workers,
    )
    progress = Progress(
        sum(os.path.getsize(f) for f in files),
        enabled=args.progress if args.progress is not None else sys.stderr.isatty(),
    )
    t0 = time.perf_counter()
    try:
        total = loader.load_files(
            files,
            rejects_for=(lambda p: f"{p}.rejects.jsonl") if args.rejects_files else None,
            on_chunk=lambda chunk, stats: progress.advance(chunk.size, stats),
            on_error=_file_failed,
        )
        try:
            loader.derive_lineage()
            pending = None
        except WarehouseError:
            raise
        except Exception as exc:  # the batches are committed whole; only data edges wait
            pending = exc
    finally:
        progress.close()
        loader.close()
    total.seconds = time.perf_counter() - t0
    print_line(total.summary())
    if pending is not None:
        print(
            f"provwh: warning: data lineage not derived yet ({error_message(pending)}); the "
            "loaded tasks stay marked pending and the next `provwh load` or `provwh consume` "
            "derives their edges",
            file=sys.stderr,
            flush=True,
        )
    return 0


def _add_load(sub: Any) -> None:
    p = sub.add_parser("load", help="load batch files (JSONL or Parquet, provwh's or Flowcept's)")
    p.add_argument("files", nargs="+", metavar="FILE", help="batch files, or folders of them")
    add_target_options(p)
    p.add_argument(
        "--max-records",
        type=int,
        default=20_000,
        metavar="N",
        help="records per transaction for big files (default: 20000)",
    )
    p.add_argument(
        "--retry-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up when a database stays unreachable this long (default: 60)",
    )
    p.add_argument(
        "--rejects-files",
        action="store_true",
        help="also write rejected lines to FILE.rejects.jsonl (always: the rejects table)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )
    p.set_defaults(func=_load)


# --- provwh consume ------------------------------------------------------------------------------


def _consume(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if args.redis is not None or settings.get("buffer.transport") == "redis":
        from provwh.warehouse.redis_consumer import run_redis_consumer  # sqlalchemy, redis

        stats = run_redis_consumer(
            settings,
            once=args.once,
            url=args.redis or None,
            stream=args.stream,
            name=args.name,
            poll_interval=args.poll,
            targets=targets_of(args),
            group_records=args.group_records,
            workers=args.workers,
            on_start=lambda c: print_line(
                f"provwh: consuming Redis stream {c.stream} as {c.name} (stop: Ctrl+C or SIGTERM)"
            ),
        )
        print_line(stats.summary())
        return 0
    from provwh.warehouse.consumer import run_consumer  # sqlalchemy

    spool = args.spool or settings.get("buffer.spool_dir")
    stats = run_consumer(
        spool,
        settings,
        poll_interval=args.poll,
        once=args.once,
        targets=targets_of(args),
        group_records=args.group_records,
        workers=args.workers,
        on_start=lambda c: print_line(f"provwh: consuming {c.spool_dir} (stop: Ctrl+C or SIGTERM)"),
    )
    print_line(stats.summary())
    return 0


def _add_consume(sub: Any) -> None:
    p = sub.add_parser("consume", help="follow a spool folder and load its batches until stopped")
    p.add_argument("--spool", metavar="DIR", help="spool folder (default: buffer.spool_dir)")
    p.add_argument("--once", action="store_true", help="load what is ready now, then exit")
    p.add_argument("--poll", type=float, default=0.2, metavar="SECONDS", help="poll interval")
    p.add_argument(
        "--redis",
        nargs="?",
        const="",
        metavar="URL",
        help="follow the Redis stream instead of a spool folder (default URL: buffer.redis_url)",
    )
    p.add_argument("--stream", metavar="KEY", help="Redis stream (default: buffer.redis_stream)")
    p.add_argument("--name", metavar="NAME", help="consumer name; keep it stable across restarts")
    add_target_options(p)
    p.set_defaults(func=_consume)


def add(sub: Any) -> None:
    """``provwh load`` and ``provwh consume``."""
    _add_load(sub)
    _add_consume(sub)
