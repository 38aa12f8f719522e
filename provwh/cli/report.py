"""``provwh report``: a provenance card (Markdown) or report (PDF with plots)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from provwh.cli.common import CliError
from provwh.core.text import plural


def _report(args: argparse.Namespace) -> int:
    from provwh.report.service import REPORT_TYPES, generate_report

    if args.type not in REPORT_TYPES:
        raise CliError(f"unknown report type {args.type!r}")
    fmt = args.format or REPORT_TYPES[args.type][1]
    try:
        result = generate_report(
            report_type=args.type,
            format=fmt,
            print_markdown=args.print,
            output_path=args.out,
            input_jsonl_path=args.input,
            workflow_id=args.workflow,
            campaign_id=args.campaign,
        )
    except (ValueError, FileNotFoundError, ModuleNotFoundError) as exc:
        raise CliError(str(exc) or type(exc).__name__) from exc
    kind = result["report_type"].replace("_", " ")
    print(
        f"wrote {kind} {result['output_path']} ({plural(result['tasks'], 'task')},"
        f" {plural(result['workflows'], 'workflow')}, from {result['input_mode']}"
        f" {result['input']})",
        file=sys.stderr if args.print else sys.stdout,
        flush=True,
    )
    return 0


def add(sub: Any) -> None:
    """``provwh report``."""
    p = sub.add_parser(
        "report",
        help="the Workflow Card (Markdown) or the provenance report (PDF with plots)",
        description="Input: a JSONL buffer file (default: the settings' dump_buffer.path), or"
        " a workflow / campaign read from the database.",
    )
    p.add_argument(
        "--type",
        default="provenance_card",
        choices=("provenance_card", "workflow_card", "provenance_report"),
        help="(default: provenance_card)",
    )
    p.add_argument(
        "--format", choices=("markdown", "pdf"), help="(default: the type's: markdown / pdf)"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--input", metavar="FILE", help="a JSONL buffer file")
    which.add_argument("--workflow", metavar="ID", help="a workflow from the database")
    which.add_argument("--campaign", metavar="ID", help="a campaign from the database")
    p.add_argument("--out", metavar="PATH", help="output file (default: provenance_card.md / .pdf)")
    p.add_argument(
        "--print", action="store_true", help="also render the card in the terminal (rich)"
    )
    p.set_defaults(func=_report)
