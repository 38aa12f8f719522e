"""``provwh serve``: the REST API, the OpenLineage receiver and the web UI over a database."""

from __future__ import annotations

import argparse
from typing import Any

from provwh.cli.common import print_line, settings_of


def _serve(args: argparse.Namespace) -> int:
    from provwh.core.extras import require_extra

    require_extra("fastapi", "serve", "provwh serve")
    require_extra("uvicorn", "serve", "provwh serve")
    from provwh.serve import server

    db, targets = server.open_database(
        settings_of(args),
        args.duckdb,
        args.postgres,
        idle_release=args.idle_release,
        max_hold=args.max_hold,
        connections=args.connections,
    )
    server.run(
        db,
        targets,
        host=args.host,
        port=args.port,
        token=server.token_of(args.token, server.TOKEN_ENV),
        lineage_token=server.token_of(args.lineage_token, server.LINEAGE_TOKEN_ENV),
        announce=lambda *parts, **_kw: print_line(*parts),
    )
    return 0


def add(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the REST API, an OpenLineage receiver and the web UI over a database",
        description="The web UI at /, Flowcept's REST API under /api/v1 (OpenAPI at"
        " /openapi.json) and an OpenLineage receiver at POST /api/v1/lineage. Read-only"
        " unless started with a token; SIGINT or SIGTERM stops it.",
    )
    g = p.add_argument_group("database (default: PostgreSQL if enabled, else the DuckDB file)")
    g = g.add_mutually_exclusive_group()
    g.add_argument("--duckdb", metavar="PATH", help="serve this DuckDB file")
    g.add_argument("--postgres", metavar="URL", help="serve this PostgreSQL database")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8008, help="port (default: 8008)")
    p.add_argument(
        "--token",
        metavar="T",
        help="allow writes (deletes) to requests carrying 'Authorization: Bearer T'"
        " (default: PROVWH_SERVE_TOKEN; without one the server is read-only)",
    )
    p.add_argument(
        "--lineage-token",
        metavar="T",
        help="the OpenLineage receiver takes only requests carrying this token (or --token)"
        " (default: PROVWH_LINEAGE_TOKEN; without one it is open)",
    )
    t = p.add_argument_group("the database while serving")
    t.add_argument(
        "--idle-release",
        type=_seconds,
        default=1.0,
        metavar="S",
        help="DuckDB: close the file S seconds after the last request (default 1); it stays"
        " open while requests keep coming, and is let go at once for a provwh process that"
        " waits for it",
    )
    t.add_argument(
        "--max-hold",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="DuckDB: after S seconds held, close the file for half a second even when busy,"
        " for other programs (default 30; 0: never)",
    )
    t.add_argument(
        "--connections",
        type=int,
        default=8,
        metavar="N",
        help="PostgreSQL: requests served at once, each on a connection of its own (default 8)",
    )
    p.set_defaults(func=_serve)


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"seconds must be 0 or more, got {text}")
    return value
