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


def _yaml_scalar(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return text[:-4].strip() if text.endswith("\n...") else text.removesuffix("...").strip()


def settings_template() -> str:
    """Every key with its default value, each commented with its description (the settings
    schema's), its allowed values and its environment variable."""
    env_of = {key: var for var, key in ENV_OVERRIDES.items()}
    lines = [
        "# provwh settings: every key with its default. Remove the ones you do not change.",
        "# Used when named by PROVWH_SETTINGS_PATH (or --settings); environment variables",
        "# (shown per key) override the file.",
    ]
    path: list[str] = []
    for key, setting in SCHEMA.items():
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
        notes = [setting.description]
        if setting.allowed:
            notes.append("one of " + ", ".join(map(str, setting.allowed)))
        if key in env_of:
            notes.append(f"${env_of[key]}")
        value = "null" if setting.default is None else _yaml_scalar(setting.default)
        lines.append(f"{indent}{leaf}: {value}  # {'; '.join(notes)}")
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
