"""``provwh export parquet|prov|openlineage`` (archives and interchange formats) and
``provwh import`` (Flowcept batch files and OpenLineage events into the databases)."""

from __future__ import annotations

import argparse
from typing import Any

from provwh.cli.common import (
    add_target_options,
    open_text_out,
    print_line,
    settings_of,
    targets_of,
)
from provwh.core.text import plural


def _source(args: argparse.Namespace) -> Any:
    from provwh.exports.source import open_source, source_location

    duck, pg = source_location(settings_of(args), args.duckdb, args.postgres)
    return open_source(duck, pg)


def _export_parquet(args: argparse.Namespace) -> int:
    from provwh.exports.parquet import export_parquet

    existing = "overwrite" if args.overwrite else "append" if args.append else "error"
    with _source(args) as src:
        result = export_parquet(
            src,
            args.out,
            workflow_id=args.workflow,
            campaign_id=args.campaign,
            before=args.before,
            existing=existing,
            delete=args.delete,
        )
    print_line(result.summary())
    return 0


def _export_prov(args: argparse.Namespace) -> int:
    from provwh.exports.prov import export_prov

    with _source(args) as src, open_text_out(args.out) as out:
        counts = export_prov(src, args.workflow, out, args.format)
    if args.out not in (None, "-"):
        print_line(
            f"wrote {args.out}: {plural(counts.activities, 'activity')}, "
            f"{plural(counts.entities, 'entity')}, {plural(counts.agents, 'agent')}, "
            f"{plural(sum(counts.relations.values()), 'relation')}"
        )
    return 0


def _export_openlineage(args: argparse.Namespace) -> int:
    from provwh.exports.openlineage import dumps, export_openlineage

    with _source(args) as src, open_text_out(args.out) as out:
        n = 0
        for event in export_openlineage(src, args.workflow, args.namespace):
            out.write(dumps(event))
            n += 1
    if args.out not in (None, "-"):
        print_line(f"wrote {args.out}: {plural(n, 'OpenLineage event')}")
    return 0


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export provenance: Parquet archive, W3C PROV, OpenLineage")
    esub = p.add_subparsers(dest="export_command", metavar="FORMAT", required=True)

    def source_opts(q: argparse.ArgumentParser) -> None:
        g = q.add_argument_group("database to read (default: PostgreSQL if enabled, else DuckDB)")
        g.add_argument("--duckdb", metavar="PATH", help="read this DuckDB file")
        g.add_argument("--postgres", metavar="URL", help="read this PostgreSQL database")

    q = esub.add_parser(
        "parquet",
        help="archive the tables as hive-partitioned Parquet files (optionally delete them)",
        description="Write the rows of a workflow, a campaign or everything before a date as"
        " OUT/<table>/workflow_id=<id>/*.parquet, verified by reading them back.",
    )
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--workflow", metavar="ID", help="one workflow")
    which.add_argument("--campaign", metavar="ID", help="every workflow and task of a campaign")
    which.add_argument(
        "--before", metavar="DATE", help="tasks and workflows started before DATE (YYYY-MM-DD)"
    )
    q.add_argument("--out", metavar="DIR", required=True, help="archive folder")
    q.add_argument(
        "--delete",
        action="store_true",
        help="then delete the archived rows from PostgreSQL (after verifying the files)",
    )
    mode = q.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace existing partitions")
    mode.add_argument("--append", action="store_true", help="add files to existing partitions")
    source_opts(q)
    q.set_defaults(func=_export_parquet)

    q = esub.add_parser("prov", help="one workflow as W3C PROV (PROV-JSON or PROV-N)")
    q.add_argument("--workflow", metavar="ID", required=True, help="the workflow to export")
    q.add_argument("--format", choices=("json", "provn"), default="json", help="(default: json)")
    q.add_argument("--out", metavar="FILE", help="output file (default: stdout)")
    source_opts(q)
    q.set_defaults(func=_export_prov)

    q = esub.add_parser("openlineage", help="one workflow as OpenLineage run events (JSONL)")
    q.add_argument("--workflow", metavar="ID", required=True, help="the workflow to export")
    q.add_argument("--namespace", default="provwh", help="job namespace (default: provwh)")
    q.add_argument("--out", metavar="FILE", help="output file (default: stdout)")
    source_opts(q)
    q.set_defaults(func=_export_openlineage)


# --- provwh import -------------------------------------------------------------------------------


def _import(args: argparse.Namespace) -> int:
    from provwh.exports.importer import import_files

    total = import_files(args.files, targets_of(args), group_records=args.group_records)
    print_line(total.summary())
    return 0


def _add_import(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="load Flowcept JSONL buffer files or OpenLineage event files",
        description="Flowcept / provwh batch files load as with `provwh load`; OpenLineage"
        " event files (one run event per line) become task and workflow records first.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="files to import")
    add_target_options(p)
    p.set_defaults(func=_import)


def add(sub: Any) -> None:
    """``provwh export ...`` and ``provwh import``."""
    _add_export(sub)
    _add_import(sub)
