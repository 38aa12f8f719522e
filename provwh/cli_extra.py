"""More ``provwh`` subcommands: export, import, settings, check, version, report.

Each ``add_*`` function has the shape of ``cli.py``'s ``_add_*`` ones and goes into its
``COMMANDS`` list. Helpers come from ``provwh.cli`` inside functions (it imports this module),
and every heavy import is deferred, so ``provwh --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

DEFAULT_SETTINGS_FILE = "provwh_settings.yaml"


def _cli() -> Any:
    from provwh import cli

    return cli


def _write_text(text: str, out: str | None) -> None:
    """``text`` to the file ``out``, or to stdout when it is None or ``-``."""
    if out in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(text)


# --- provwh export ... ---------------------------------------------------------------------------


def _source(args: argparse.Namespace) -> Any:
    from provwh.exports.source import open_source, source_location

    duck, pg = source_location(_cli()._settings(args), args.duckdb, args.postgres)
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
    _cli()._print(result.summary())
    return 0


def _export_prov(args: argparse.Namespace) -> int:
    from provwh.exports.prov import export_prov

    with _source(args) as src:
        text, doc = export_prov(src, args.workflow, args.format)
    _write_text(text, args.out)
    if args.out not in (None, "-"):
        _cli()._print(
            f"wrote {args.out}: {len(doc.activities)} activities, {len(doc.entities)} entities,"
            f" {len(doc.agents)} agents, {len(doc.relations)} relations"
        )
    return 0


def _export_openlineage(args: argparse.Namespace) -> int:
    from provwh.exports.openlineage import dumps, export_openlineage

    with _source(args) as src:
        events = export_openlineage(src, args.workflow, args.namespace)
    _write_text(dumps(events), args.out)
    if args.out not in (None, "-"):
        _cli()._print(f"wrote {args.out}: {len(events)} OpenLineage events")
    return 0


def add_export(sub: Any) -> None:
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

    cli = _cli()
    total = import_files(args.files, cli._targets(args), group_records=args.group_records)
    cli._print(total.summary())
    return 0


def add_import(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="load Flowcept JSONL buffer files or OpenLineage event files",
        description="Flowcept / provwh batch files load as with `provwh load`; OpenLineage"
        " event files (one run event per line) become task and workflow records first.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="files to import")
    _cli()._add_target_options(p)
    p.set_defaults(func=_import)


# --- provwh settings show|init -------------------------------------------------------------------

# key -> why one would change it (the ``settings init`` comments)
DESCRIPTIONS: dict[str, str] = {
    "project.db_flush_mode": "online: batches go to the spool for a consumer; offline: dump only",
    "project.dump_buffer.enabled": "write the buffer file (JSONL) when a capture stops",
    "project.dump_buffer.path": "where the buffer file goes",
    "project.dump_buffer.delete_previous_file": "start each run with an empty buffer file",
    "project.dump_buffer.append_workflow_id_to_path": "one buffer file per workflow",
    "project.dump_buffer.append_id_to_path": "one buffer file per capture (its id in the name)",
    "project.replace_non_json_serializable": "store repr() of values JSON cannot hold",
    "project.enrich_messages": "add host, user and times to every record",
    "instrumentation.enabled": "capture at all (false: decorators and contexts do nothing)",
    "telemetry_capture.enabled": "CPU / memory / disk / network / GPU at task start and end",
    "telemetry_capture.cpu": "CPU times and percent",
    "telemetry_capture.per_cpu": "also per CPU (bigger records)",
    "telemetry_capture.mem": "virtual memory and swap",
    "telemetry_capture.process_info": "this process's memory, CPU and threads",
    "telemetry_capture.disk": "disk usage and I/O counters",
    "telemetry_capture.network": "network I/O counters",
    "telemetry_capture.gpu": "GPU use (needs the gpu extra)",
    "telemetry_capture.machine_info": "machine description in the workflow record",
    "buffer.format": "batch file format in the spool",
    "buffer.spool_dir": "folder of batch files a consumer loads",
    "buffer.flush_size": "records per batch file",
    "buffer.flush_interval": "seconds before a partial batch is written",
    "buffer.max_pending": "records held in memory before capture blocks",
    "buffer.fsync": "fsync batch files (durable across power loss; slower)",
    "flows.capture": "capture data-flow (per-line) provenance",
    "databases.duckdb.enabled": "load into the embedded DuckDB file",
    "databases.duckdb.path": "the DuckDB file",
    "databases.postgres.enabled": "load into PostgreSQL (also turned on by PROVWH_POSTGRES_URL)",
    "databases.postgres.url": "postgresql://user:password@host:5432/db",
    "databases.postgres.migrate_on_startup": "upgrade an older schema instead of refusing",
}


_KIND_NOTES = {
    "bool": "true or false",
    "str": "a string",
    "opt_str": "a string, or null",
    "pos_int": "a positive integer",
    "pos_float": "a positive number",
}


def _yaml_scalar(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return text[:-4].strip() if text.endswith("\n...") else text.removesuffix("...").strip()


def settings_template() -> str:
    """Every key with its default value, each with a comment (and its environment variable)."""
    from provwh.core.config import ENV_OVERRIDES, SCHEMA

    env_of = {key: var for var, key in ENV_OVERRIDES.items()}
    lines = [
        "# provwh settings: every key with its default. Remove the ones you do not change.",
        "# Used when named by PROVWH_SETTINGS_PATH (or --settings); environment variables",
        "# (shown per key) override the file.",
    ]
    path: list[str] = []
    for key, (_kind, default, choices) in SCHEMA.items():
        *parents, leaf = key.split(".")
        common = 0
        while common < min(len(path), len(parents)) and path[common] == parents[common]:
            common += 1
        for depth in range(common, len(parents)):
            if depth == 0:
                lines.append("")
            lines.append(f"{'  ' * depth}{parents[depth]}:")
        path = parents
        indent = "  " * len(parents)
        notes = [DESCRIPTIONS.get(key, "")]
        if choices:
            notes.append("one of " + ", ".join(map(str, choices)))
        if key in env_of:
            notes.append(f"${env_of[key]}")
        comment = "; ".join(n for n in notes if n) or _KIND_NOTES.get(_kind, _kind)
        value = "null" if default is None else _yaml_scalar(default)
        lines.append(f"{indent}{leaf}: {value}" + (f"  # {comment}" if comment else ""))
    return "\n".join(lines) + "\n"


def _settings_show(args: argparse.Namespace) -> int:
    settings = _cli()._settings(args)
    snapshot = settings.snapshot()
    if args.json:
        _cli()._print(json.dumps(snapshot, indent=2, default=str))
        return 0
    import yaml

    where = snapshot.pop("settings_path", None) or "defaults (no settings file)"
    _cli()._print(f"# settings: {where}; environment overrides applied")
    _cli()._print(yaml.safe_dump(snapshot, sort_keys=False).rstrip())
    return 0


def _settings_init(args: argparse.Namespace) -> int:
    path = args.path
    if os.path.exists(path) and not args.force:
        raise _cli().CliError(f"{path} exists: pass --force to overwrite it")
    _write_text(settings_template(), path)
    _cli()._print(f"wrote {path} (use it: export PROVWH_SETTINGS_PATH={os.path.abspath(path)})")
    return 0


def add_settings(sub: Any) -> None:
    p = sub.add_parser("settings", help="show the effective settings, or write a settings file")
    ssub = p.add_subparsers(dest="settings_command", metavar="COMMAND", required=True)
    q = ssub.add_parser("show", help="the effective settings (file + environment), redacted")
    q.add_argument("--json", action="store_true", help="as JSON instead of YAML")
    q.set_defaults(func=_settings_show)
    q = ssub.add_parser("init", help="write a commented settings file with every default")
    q.add_argument(
        "path", nargs="?", default=DEFAULT_SETTINGS_FILE, help=f"(default: {DEFAULT_SETTINGS_FILE})"
    )
    q.add_argument("--force", action="store_true", help="overwrite an existing file")
    q.set_defaults(func=_settings_init)


# --- provwh check --------------------------------------------------------------------------------

# distribution -> what needs it
PACKAGES: tuple[tuple[str, str], ...] = (
    ("duckdb", "required"),
    ("pyarrow", "required"),
    ("SQLAlchemy", "required"),
    ("orjson", "required"),
    ("psutil", "required"),
    ("PyYAML", "required"),
    ("psycopg", "extra postgres"),
    ("alembic", "extra postgres"),
    ("pandas", "extra pandas"),
    ("rich", "extra report"),
    ("matplotlib", "extra report"),
    ("prov", "extra prov"),
    ("nvidia-ml-py", "extra gpu"),
    ("redis", "redis transport"),
    ("dask", "extra dask"),
    ("mcp", "extra agents"),
)


def _package_lines() -> list[str]:
    from importlib import metadata

    lines = []
    for dist, why in PACKAGES:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"  {dist:<14} {version:<16} ({why})")
    return lines


def _installation_lines() -> tuple[list[str], bool]:
    """The files provwh ships (SQL, views, migrations): present where this install reads them."""
    from provwh.core import resources

    problems = resources.missing()
    if problems:
        return [f"  missing: {p}" for p in problems], False
    from provwh.query.views import views

    scripts = [
        p.name
        for p in resources.migrations_dir().joinpath("versions").iterdir()
        if p.name.endswith(".py") and p.name[0].isdigit()
    ]
    names = [v.name for v in views("duckdb")]
    return [
        f"  SQL: ok ({resources.sql_dir()}: {resources.LINEAGE_SQL}, {len(names)} views)",
        f"  migrations: ok ({resources.migrations_dir()}: {len(scripts)} revisions)",
    ], True


def _duckdb_line(path: str) -> tuple[str, bool]:
    path = os.path.abspath(path)
    if not os.path.exists(path):
        return f"  DuckDB {path}: not created yet (created on first load)", True
    try:
        import duckdb

        from provwh.warehouse.duck import schema_revision

        with duckdb.connect(path, read_only=True) as conn:
            revision = schema_revision(conn)
        return f"  DuckDB {path}: ok (schema revision {revision or 'none'})", True
    except Exception as exc:  # a lock held by a loader is an answer too, but say so
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"  DuckDB {path}: cannot open ({first})", False


def _postgres_line(url: str) -> tuple[str, bool]:
    from provwh.core.redact import redact_url

    shown = redact_url(url)
    try:
        import psycopg

        from provwh.warehouse.migrate import libpq_url

        with psycopg.connect(libpq_url(url), connect_timeout=3) as conn:
            exists = conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0]
            revision = (
                conn.execute("SELECT version_num FROM alembic_version").fetchone()
                if exists
                else None
            )
        rev = revision[0] if revision else "empty"
        return f"  PostgreSQL {shown}: ok (schema revision {rev})", True
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"  PostgreSQL {shown}: does not answer ({first})", False


def _check(args: argparse.Namespace) -> int:
    from provwh.version import __version__

    cli = _cli()
    settings = cli._settings(args)
    out = [f"provwh {__version__} (Python {sys.version.split()[0]})"]
    out.append(f"settings: {settings.path or 'defaults (no settings file)'}")
    out.append("databases:")
    ok = True
    if settings.duckdb_enabled:
        line, good = _duckdb_line(settings.duckdb_path)
        out.append(line)
        ok &= good
    if settings.postgres_enabled:
        line, good = _postgres_line(settings.postgres_url)
        out.append(line)
        ok &= good
    if not (settings.duckdb_enabled or settings.postgres_enabled):
        out.append("  none enabled")
        ok = False
    out.append("installation:")
    lines, good = _installation_lines()
    out.extend(lines)
    ok &= good
    out.append("packages:")
    out.extend(_package_lines())
    out.append("effective settings:")
    values = settings.snapshot()
    values.pop("settings_path", None)
    out.extend(f"  {k} = {v}" for k, v in _flatten(values))
    cli._print("\n".join(out))
    return 0 if ok else 1


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, value))
    return items


def add_check(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="which databases answer, which optional packages are present, the settings",
        description="Exit status 1 when an enabled database does not answer or this "
        "installation lacks a file provwh ships (SQL, views, migrations).",
    )
    p.set_defaults(func=_check)


# --- provwh version ------------------------------------------------------------------------------


def _version(args: argparse.Namespace) -> int:
    from provwh.version import __version__

    _cli()._print(f"provwh {__version__}")
    return 0


def add_version(sub: Any) -> None:
    p = sub.add_parser("version", help="print the provwh version")
    p.set_defaults(func=_version)


# --- provwh report -------------------------------------------------------------------------------


def _report(args: argparse.Namespace) -> int:
    from provwh.report.service import REPORT_TYPES, generate_report

    cli = _cli()
    if args.type not in REPORT_TYPES:
        raise cli.CliError(f"unknown report type {args.type!r}")
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
        raise cli.CliError(str(exc) or type(exc).__name__) from exc
    kind = result["report_type"].replace("_", " ")
    print(
        f"wrote {kind} {result['output_path']} ({result['tasks']} tasks,"
        f" {result['workflows']} workflows, from {result['input_mode']} {result['input']})",
        file=sys.stderr if args.print else sys.stdout,
        flush=True,
    )
    return 0


def add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="a provenance card (Markdown) or report (PDF with plots)",
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


EXTRA_COMMANDS = (add_export, add_import, add_settings, add_check, add_version, add_report)
