"""The ``provwh`` command: one module per command group, each with an ``add(subparsers)``.

``COMMANDS`` lists the modules in the order ``provwh --help`` shows their commands; a new
command group is a module with an ``add`` function, listed there. What the modules share
(``CliError``, the settings and databases of a command, output, the one-line error) is in
``provwh.cli.common``, which imports none of them.

Errors print one line (``provwh: error: ...``) and exit 1, usage errors exit 2, ``--debug``
shows the traceback. ``provwh --help`` and ``--version`` stay fast: a command module imports
heavy or optional packages, and the provwh modules that do a command's work (warehouse, query,
exports, report), inside the function that needs them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from provwh.cli import check, db, exports, load, report, serve, settings, sql
from provwh.cli.common import error_line
from provwh.version import __version__

# the command groups, in the order of ``provwh --help``
COMMANDS = (db, load, sql, exports, settings, check, report, serve)

DESCRIPTION = "The ``provwh`` command: database schema, loading batch files, running a consumer."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="provwh", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"provwh {__version__}")
    parser.add_argument("--settings", metavar="PATH", help="settings file (PROVWH_SETTINGS_PATH)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add(sub)
    return parser


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
        print(error_line(exc, parser, argv), file=sys.stderr, flush=True)
        return 1
