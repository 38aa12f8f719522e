"""The README's settings table (section "## Settings") names every key of the settings schema
once, with the schema's default."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from provwh.core.config import SCHEMA

ROOT = Path(__file__).resolve().parent.parent


def readme_settings_rows() -> list[tuple[str, str]]:
    """(key cell, default cell) of each row of the table under "## Settings"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows.append((cells[0], cells[1]))
    return rows


def expand_keys(cell: str) -> list[str]:
    """```buffer.{format, spool_dir}``` -> ["buffer.format", "buffer.spool_dir"]."""
    name = cell.strip("`")
    m = re.fullmatch(r"(.*)\{(.*)\}", name)
    if m is None:
        return [name]
    return [m.group(1) + leaf.strip() for leaf in m.group(2).split(",")]


def parse_defaults(cell: str) -> list[object]:
    """```true`, `x.jsonl`, none (a note)`` -> [True, "x.jsonl", None]; a note in parentheses
    after the values is dropped; a value may be a YAML list (```[a, b]```)."""
    cell = re.sub(r"\s*\(.*\)$", "", cell)
    values: list[object] = []
    for token in (t.strip() for t in re.split(r",(?![^\[]*\])", cell)):
        if token == "none":
            values.append(None)
        else:
            assert token.startswith("`") and token.endswith("`"), token
            values.append(yaml.safe_load(token.strip("`")))
    return values


def test_the_readme_settings_table_matches_the_schema():
    rows = readme_settings_rows()
    assert rows, "no settings table under '## Settings' in README.md"
    seen: list[str] = []
    for key_cell, default_cell in rows:
        keys, defaults = expand_keys(key_cell), parse_defaults(default_cell)
        if len(defaults) == 1:  # one default for every key of the row
            defaults *= len(keys)
        assert len(defaults) == len(keys), key_cell
        for key, default in zip(keys, defaults, strict=True):
            assert key in SCHEMA, f"README names {key}, which the settings schema lacks"
            expected = SCHEMA[key].default
            assert (type(default), default) == (type(expected), expected), key
        seen.extend(keys)
    assert sorted(seen) == sorted(SCHEMA), "README's settings table: keys missing or repeated"


def test_every_setting_is_described():
    assert [k for k, s in SCHEMA.items() if not s.description.strip()] == []
