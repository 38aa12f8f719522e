"""The ``provwh`` command: database schema, loading batch files, running a consumer.

Each subcommand is added by one ``_add_*`` function listed in ``COMMANDS``; add new ones the
same way. Errors print one line (``provwh: error: ...``) and exit 1, usage errors exit 2,
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from provwh.version import __version__


class CliError(Exception):
    """A user-facing error raised by a command (exit 1)."""


# --- shared helpers ------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Any:
    from provwh.core.config import load_settings

    return load_settings(args.settings)


def _postgres_url(args: argparse.Namespace) -> str:
    url = getattr(args, "url", None) or _settings(args).postgres_url
    if not url:
        raise CliError("no PostgreSQL database: pass --url or set PROVWH_POSTGRES_URL")
    from provwh.core.config import normalize_postgres_url

    return normalize_postgres_url(url)


def _add_target_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("databases (default: as the settings enable them)")
    g.add_argument("--duckdb", metavar="PATH", help="load into this DuckDB file")
    g.add_argument("--postgres", metavar="URL", help="load into this PostgreSQL database")
    p.add_argument(
        "--group-records",
        type=int,
        default=None,
        metavar="N",
        help="batches share a transaction up to N records (default: 5000 for DuckDB alone,"
        " else 1: a transaction per batch)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes that parse and normalize for PostgreSQL-only loads of a transaction"
        " per batch (default: half the cores; 0: in this process)",
    )


def _targets(args: argparse.Namespace) -> list[Any]:
    settings = _settings(args)
    if not (args.duckdb or args.postgres):
        from provwh.warehouse.engines import targets_from_settings

        targets = targets_from_settings(settings)
        if not targets:
            raise CliError("no database enabled: pass --duckdb PATH or --postgres URL")
        return targets
    targets = []
    if args.duckdb:
        from provwh.warehouse.duck import DuckTarget

        targets.append(DuckTarget(args.duckdb))
    if args.postgres:
        from provwh.warehouse.pg import PgTarget

        migrate = bool(settings.get("databases.postgres.migrate_on_startup"))
        targets.append(PgTarget(args.postgres, migrate_on_startup=migrate))
    return targets


def _print(*parts: Any) -> None:
    print(*parts, flush=True)


# --- provwh db ...  ------------------------------------------------------------------------------


def _db_upgrade(args: argparse.Namespace) -> int:
    from provwh.core.redact import redact_url
    from provwh.warehouse import migrate

    url = _postgres_url(args)
    migrate.upgrade(url, args.revision, sql=args.sql)
    if not args.sql:
        _print(f"{redact_url(url)}: at revision {migrate.current_revision(url)}")
    return 0


def _db_downgrade(args: argparse.Namespace) -> int:
    from provwh.core.redact import redact_url
    from provwh.warehouse import migrate

    url = _postgres_url(args)
    migrate.downgrade(url, args.revision, sql=args.sql)
    if not args.sql:
        _print(f"{redact_url(url)}: at revision {migrate.current_revision(url) or 'base'}")
    return 0


def _describe_revision(revision: str | None, head: str) -> str:
    if revision is None:
        return "empty (created at head on first load, or run `provwh db upgrade`)"
    return f"{revision} (head)" if revision == head else f"{revision} (head is {head})"


def _db_current(args: argparse.Namespace) -> int:
    from provwh.core.redact import redact_url
    from provwh.warehouse.schema import SCHEMA_REVISION

    settings = _settings(args)
    url = args.url or settings.postgres_url
    shown = False
    if url:
        from provwh.warehouse import migrate

        url = migrate.sqlalchemy_url(url)
        revision = migrate.current_revision(url)
        _print(f"PostgreSQL {redact_url(url)}: {_describe_revision(revision, SCHEMA_REVISION)}")
        shown = True
    if not args.url and settings.duckdb_enabled:
        path = os.path.abspath(settings.duckdb_path)
        if os.path.exists(path):
            import duckdb

            from provwh.warehouse.duck import schema_revision

            with duckdb.connect(path, read_only=True) as conn:
                revision = schema_revision(conn)
            _print(f"DuckDB {path}: {_describe_revision(revision, SCHEMA_REVISION)}")
        else:
            _print(f"DuckDB {path}: not created yet (created at head on first load)")
        shown = True
    if not shown:
        raise CliError("no database configured: pass --url or set PROVWH_POSTGRES_URL")
    return 0


def _db_check(args: argparse.Namespace) -> int:
    from provwh.core.redact import redact_url
    from provwh.warehouse import migrate

    url = _postgres_url(args)
    revision, head = migrate.current_revision(url), migrate.head_revision()
    if revision != head:
        raise CliError(
            f"{redact_url(url)} is at revision {revision or 'base'}, not {head}: "
            "run `provwh db upgrade` first"
        )
    diffs = migrate.check(url)
    if diffs:
        _print(f"models and migrations differ ({len(diffs)}): a migration is missing")
        for diff in diffs:
            _print(f"  {diff}")
        return 1
    _print(f"models and migrations agree (revision {head})")
    return 0


def _add_db(sub: Any) -> None:
    p = sub.add_parser("db", help="PostgreSQL schema (alembic migrations)")
    dbsub = p.add_subparsers(dest="db_command", metavar="COMMAND", required=True)

    def url_opt(q: argparse.ArgumentParser) -> None:
        q.add_argument("--url", help="database URL (default: databases.postgres.url)")

    q = dbsub.add_parser("upgrade", help="upgrade the database to a revision (default: head)")
    q.add_argument("revision", nargs="?", default="head")
    q.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    url_opt(q)
    q.set_defaults(func=_db_upgrade)
    q = dbsub.add_parser("downgrade", help="downgrade the database to a revision ('base': none)")
    q.add_argument("revision")
    q.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    url_opt(q)
    q.set_defaults(func=_db_downgrade)
    q = dbsub.add_parser("current", help="show the schema revision of the databases")
    url_opt(q)
    q.set_defaults(func=_db_current)
    q = dbsub.add_parser("check", help="check that the models and the migrations agree")
    url_opt(q)
    q.set_defaults(func=_db_check)
    from provwh.query.sql_cli import add_grant_readonly_command

    add_grant_readonly_command(dbsub)


# --- provwh load ---------------------------------------------------------------------------------


class _Progress:
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
            f" {stats.tasks:,} tasks ({rate:,.0f}/s)"
        )
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _load(args: argparse.Namespace) -> int:
    from provwh.transport.spool import expand_paths
    from provwh.warehouse.errors import WarehouseError
    from provwh.warehouse.loader import Loader, RetryPolicy

    files = expand_paths(args.files)
    loader = Loader(
        _targets(args),
        retry=RetryPolicy(timeout=args.retry_timeout),
        max_records=args.max_records,
        group_records=args.group_records,
        workers=args.workers,
    )
    progress = _Progress(
        sum(os.path.getsize(f) for f in files),
        enabled=args.progress if args.progress is not None else sys.stderr.isatty(),
    )
    t0 = time.perf_counter()
    try:
        total = loader.load_files(
            files,
            rejects_for=(lambda p: f"{p}.rejects.jsonl") if args.rejects_files else None,
            on_chunk=lambda chunk, stats: progress.advance(chunk.size, stats),
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
    _print(total.summary())
    if pending is not None:
        print(
            f"provwh: warning: data lineage not derived yet ({_message(pending)}); the loaded "
            "tasks stay marked pending and the next `provwh load` or `provwh consume` derives "
            "their edges",
            file=sys.stderr,
            flush=True,
        )
    return 0


def _add_load(sub: Any) -> None:
    p = sub.add_parser("load", help="load batch files (JSONL or Parquet, provwh's or Flowcept's)")
    p.add_argument("files", nargs="+", metavar="FILE", help="batch files, or folders of them")
    _add_target_options(p)
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
    from provwh.warehouse.consumer import run_consumer

    settings = _settings(args)
    if args.redis is not None or settings.get("buffer.transport") == "redis":
        from provwh.warehouse.redis_consumer import run_redis_consumer

        stats = run_redis_consumer(
            settings,
            once=args.once,
            url=args.redis or None,
            stream=args.stream,
            name=args.name,
            poll_interval=args.poll,
            targets=_targets(args),
            group_records=args.group_records,
            workers=args.workers,
            on_start=lambda c: _print(
                f"provwh: consuming Redis stream {c.stream} as {c.name} (stop: Ctrl+C or SIGTERM)"
            ),
        )
        _print(stats.summary())
        return 0
    spool = args.spool or settings.get("buffer.spool_dir")
    stats = run_consumer(
        spool,
        settings,
        poll_interval=args.poll,
        once=args.once,
        targets=_targets(args),
        group_records=args.group_records,
        workers=args.workers,
        on_start=lambda c: _print(f"provwh: consuming {c.spool_dir} (stop: Ctrl+C or SIGTERM)"),
    )
    _print(stats.summary())
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
    _add_target_options(p)
    p.set_defaults(func=_consume)


# --- entry point ---------------------------------------------------------------------------------


def _add_sql(sub: Any) -> None:
    from provwh.query.sql_cli import add_sql_command

    add_sql_command(sub)


def _extra_commands() -> list[Callable[[Any], None]]:
    from provwh import cli_extra  # imports provwh.cli inside its functions: no cycle

    return list(cli_extra.EXTRA_COMMANDS)


COMMANDS: list[Callable[[Any], None]] = [
    _add_db,
    _add_load,
    _add_consume,
    _add_sql,
    *_extra_commands(),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="provwh", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"provwh {__version__}")
    parser.add_argument("--settings", metavar="PATH", help="settings file (PROVWH_SETTINGS_PATH)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, CliError) or type(exc).__module__.startswith("provwh"):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except BaseException as exc:
        if args.debug:
            traceback.print_exc()
        from provwh.core.extras import extra_for

        extra = extra_for(exc)
        if extra is not None:
            message = (
                f"{_command_name(parser, argv)} needs the '{extra}' extra: "
                f"pip install 'provwh[{extra}]'"
            )
        else:
            message = f"provwh: error: {_message(exc)}"
        print(message, file=sys.stderr, flush=True)
        return 1


def _command_name(parser: argparse.ArgumentParser, argv: list[str] | None) -> str:
    """``provwh db upgrade``: the words of argv that named the (sub)command."""
    words = [parser.prog]
    for token in sys.argv[1:] if argv is None else argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and token in subs[0].choices:
            words.append(token)
            parser = subs[0].choices[token]
        elif not token.startswith("-"):
            break
    return " ".join(words)


if __name__ == "__main__":
    sys.exit(main())
