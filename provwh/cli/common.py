"""What every ``provwh`` command module shares: the user-facing error, the settings and
databases a command works on, its output, and the one-line error message.

This module imports no command module (they import it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from provwh.core.config import Settings, load_settings, normalize_postgres_url
from provwh.core.extras import extra_for
from provwh.core.text import first_line
from provwh.warehouse.engines import targets_from_settings


class CliError(Exception):
    """A user-facing error raised by a command (exit 1)."""


# --- settings and databases ----------------------------------------------------------------------


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings the command runs with (``--settings PATH``, else the environment's)."""
    return load_settings(getattr(args, "settings", None))


def postgres_url_of(args: argparse.Namespace) -> str:
    """``--url``, else ``databases.postgres.url``, normalized; a CliError when neither is set."""
    url = getattr(args, "url", None) or settings_of(args).postgres_url
    if not url:
        raise CliError("no PostgreSQL database: pass --url or set PROVWH_POSTGRES_URL")
    return normalize_postgres_url(url)


def add_target_options(p: argparse.ArgumentParser) -> None:
    """``--duckdb PATH`` / ``--postgres URL`` and the loading options of commands that write."""
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


def targets_of(args: argparse.Namespace) -> list[Any]:
    """The databases ``add_target_options`` named, else those the settings enable."""
    settings = settings_of(args)
    if not (args.duckdb or args.postgres):
        targets = targets_from_settings(settings)
        if not targets:
            raise CliError("no database enabled: pass --duckdb PATH or --postgres URL")
        return targets
    targets = []
    if args.duckdb:
        from provwh.warehouse.duck import DuckTarget  # duckdb, pyarrow

        targets.append(DuckTarget(args.duckdb))
    if args.postgres:
        from provwh.warehouse.pg import PgTarget  # psycopg, sqlalchemy

        migrate = bool(settings.get("databases.postgres.migrate_on_startup"))
        targets.append(PgTarget(args.postgres, migrate_on_startup=migrate))
    return targets


# --- output --------------------------------------------------------------------------------------


def print_line(*parts: Any) -> None:
    """A line on stdout, flushed (a command's result)."""
    print(*parts, flush=True)


@contextmanager
def open_text_out(out: str | None) -> Iterator[TextIO]:
    """Where a streamed export writes: stdout (None or ``-``), or the file ``out``, which
    appears only when the export succeeded (written beside it, then renamed)."""
    if out in (None, "-"):
        yield sys.stdout
        sys.stdout.flush()
        return
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{out}.{os.getpid()}.partial"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            yield fh
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(text: str, out: str | None) -> None:
    """``text`` to the file ``out``, or to stdout when it is None or ``-``."""
    if out in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(text)


# --- errors --------------------------------------------------------------------------------------


def error_message(exc: BaseException) -> str:
    """The first line of an error; other packages' errors keep their type's name in front."""
    first = first_line(exc)
    if isinstance(exc, CliError) or type(exc).__module__.startswith("provwh"):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def error_line(exc: BaseException, parser: argparse.ArgumentParser, argv: list[str] | None) -> str:
    """The one line ``provwh`` prints for a failed command: the extra to install, or the error."""
    extra = extra_for(exc)
    if extra is not None:
        return (
            f"{command_name(parser, argv)} needs the '{extra}' extra: pip install 'provwh[{extra}]'"
        )
    return f"provwh: error: {error_message(exc)}"


def command_name(parser: argparse.ArgumentParser, argv: list[str] | None) -> str:
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
