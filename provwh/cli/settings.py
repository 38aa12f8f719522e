"""``provwh settings show`` (the effective settings, redacted) and ``provwh settings init`` (a
commented settings file with every default)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from provwh.cli.common import CliError, print_line, settings_of, write_text
from provwh.core.config import ENV_OVERRIDES, SCHEMA

DEFAULT_SETTINGS_FILE = "provwh_settings.yaml"

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


def _show(args: argparse.Namespace) -> int:
    snapshot = settings_of(args).snapshot()
    if args.json:
        print_line(json.dumps(snapshot, indent=2, default=str))
        return 0
    import yaml

    where = snapshot.pop("settings_path", None) or "defaults (no settings file)"
    print_line(f"# settings: {where}; environment overrides applied")
    print_line(yaml.safe_dump(snapshot, sort_keys=False).rstrip())
    return 0


def _init(args: argparse.Namespace) -> int:
    path = args.path
    if os.path.exists(path) and not args.force:
        raise CliError(f"{path} exists: pass --force to overwrite it")
    write_text(settings_template(), path)
    print_line(f"wrote {path} (use it: export PROVWH_SETTINGS_PATH={os.path.abspath(path)})")
    return 0


def add(sub: Any) -> None:
    """``provwh settings show|init``."""
    p = sub.add_parser("settings", help="show the effective settings, or write a settings file")
    ssub = p.add_subparsers(dest="settings_command", metavar="COMMAND", required=True)
    q = ssub.add_parser("show", help="the effective settings (file + environment), redacted")
    q.add_argument("--json", action="store_true", help="as JSON instead of YAML")
    q.set_defaults(func=_show)
    q = ssub.add_parser("init", help="write a commented settings file with every default")
    q.add_argument(
        "path", nargs="?", default=DEFAULT_SETTINGS_FILE, help=f"(default: {DEFAULT_SETTINGS_FILE})"
    )
    q.add_argument("--force", action="store_true", help="overwrite an existing file")
    q.set_defaults(func=_init)
