"""``provwh sql "SELECT ..."``: read-only SQL from the shell, on the warehouse or on batch files.

Output is an aligned table (``--csv``, ``--json`` for machines). Database: as the settings say
(PostgreSQL when enabled, else the DuckDB file), or ``--duckdb PATH`` / ``--postgres URL``;
``--files GLOB`` (repeatable, quote the pattern) queries JSONL / Parquet batch files in place.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as _dt
import os
import sys
from typing import Any

import orjson

from provwh.cli.common import settings_of

MAX_CELL = 60  # characters of a cell in table output


def add(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sql`` to a ``provwh`` subparsers object; returns the parser."""
    p = subparsers.add_parser(
        "sql",
        help="run a read-only SQL query (views v_*) on the warehouse or on batch files",
        description=(
            "Run one read-only SQL query. Views: v_tasks, v_task_io, v_task_telemetry, "
            "v_workflow_summary, v_activity_stats, v_task_edges, v_data_lineage, v_data_objects, "
            "v_loops, v_agents."
        ),
    )
    p.add_argument("query", help="the SQL query (SELECT / WITH / VALUES / EXPLAIN ...)")
    src = p.add_argument_group("source (default: the database the settings enable)")
    src.add_argument(
        "--files",
        action="append",
        metavar="GLOB",
        help="query these batch files (JSONL / Parquet, folders, quoted globs); repeatable",
    )
    src.add_argument("--duckdb", metavar="PATH", help="query this DuckDB file")
    src.add_argument("--postgres", metavar="URL", help="query this PostgreSQL database")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV output")
    fmt.add_argument("--json", action="store_true", help="JSON output (an array of objects)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="VALUE",
        help="bind a parameter (%%s on PostgreSQL, ? on DuckDB); repeatable, in order",
    )
    p.set_defaults(func=run_sql_command)
    return p


def open_db(args: argparse.Namespace) -> Any:
    """The DBAPI the options name."""
    from provwh.query.api import DBAPI

    chosen = [n for n in ("files", "duckdb", "postgres") if getattr(args, n, None)]
    if len(chosen) > 1:
        raise ValueError("choose one source: --files, --duckdb or --postgres")
    if args.files:
        return DBAPI.from_files(args.files)
    if args.duckdb:
        return DBAPI.from_duckdb(_existing(args.duckdb))
    if args.postgres:
        return DBAPI.from_postgres(args.postgres)
    settings = settings_of(args)
    if not settings.postgres_enabled and settings.duckdb_enabled:
        return DBAPI.from_duckdb(_existing(settings.duckdb_path))
    return DBAPI.from_settings(settings)


def _existing(path: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no DuckDB file at {os.path.abspath(path)} (nothing loaded yet?); "
            "query batch files with --files"
        )
    return path


def run_sql_command(args: argparse.Namespace, out: Any = None) -> int:
    """The handler of ``provwh sql``: prints the rows, returns the exit status."""
    out = out or sys.stdout
    db = open_db(args)
    try:
        params = [_param(v) for v in args.param] if args.param else None
        names, rows = db.sql_rows(args.query, params)
    finally:
        db.close()
    if args.csv:
        write_csv(names, rows, out)
    elif args.json:
        write_json(names, rows, out)
    else:
        write_table(names, rows, out)
    return 0


def _param(text: str) -> Any:
    """A parameter from the shell: a JSON number, boolean or null when it reads as one."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, (int, float, bool)) or value is None else text


def _text(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(v).hex()
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat(sep=" ") if isinstance(v, _dt.datetime) else v.isoformat()
    return str(v)


def write_table(names: list[str], rows: list[tuple], out: Any) -> None:
    cells = [[_text(v).replace("\n", "\\n") for v in row] for row in rows]
    cells = [[c if len(c) <= MAX_CELL else c[: MAX_CELL - 1] + "…" for c in row] for row in cells]
    widths = [len(n) for n in names]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = []
    for i in range(len(names)):
        present = [r[i] for r in rows if r[i] is not None]
        numeric.append(
            bool(present)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
        )

    def line(values: list[str]) -> str:
        return " | ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out.write(line(list(names)) + "\n")
    out.write("-+-".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row) + "\n")
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")


def write_csv(names: list[str], rows: list[tuple], out: Any) -> None:
    writer = csv.writer(out, lineterminator="\n")  # CRLF would end up in shell variables
    writer.writerow(names)
    for row in rows:
        writer.writerow(["" if v is None else _text(v) for v in row])


def write_json(names: list[str], rows: list[tuple], out: Any) -> None:
    def default(v: Any) -> Any:
        if isinstance(v, (bytes, bytearray, memoryview)):
            return base64.b64encode(bytes(v)).decode()
        return str(v)

    data = [dict(zip(names, row, strict=True)) for row in rows]
    out.write(orjson.dumps(data, default=default, option=orjson.OPT_INDENT_2).decode() + "\n")
