"""The schema's revision chain, read from the alembic migration scripts themselves.

PostgreSQL runs the scripts through alembic; a DuckDB file is upgraded along the same chain
with the SQL each script lists for DuckDB (``duckdb_statements``, empty when a revision has
nothing to do there, e.g. an index DuckDB files do not carry). The scripts are read with
``ast``, not imported: a DuckDB-only install has no alembic.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache

from provwh.core import resources


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    duckdb_statements: tuple[str, ...]
    source: str


@cache
def chain() -> tuple[Revision, ...]:
    """Every revision, oldest first (a script without ``duckdb_statements`` is an error)."""
    found: dict[str | None, Revision] = {}
    versions = resources.migrations_dir() / "versions"
    for path in sorted(versions.glob("[0-9]*.py")):
        values = _assignments(path.read_text(encoding="utf-8"))
        missing = {"revision", "down_revision", "duckdb_statements"} - values.keys()
        if missing:
            raise ValueError(f"migration {path.name} lacks {', '.join(sorted(missing))}")
        rev = Revision(values["revision"], values["down_revision"],
                       tuple(values["duckdb_statements"]), path.name)  # fmt: skip
        if rev.down_revision in found:
            raise ValueError(f"migrations {found[rev.down_revision].source} and {path.name} "
                             f"both follow {rev.down_revision}")  # fmt: skip
        found[rev.down_revision] = rev
    out, at = [], None
    while at in found:
        out.append(found[at])
        at = out[-1].revision
    if len(out) != len(found):
        raise ValueError("the migration scripts do not form one chain")
    return tuple(out)


def head() -> str:
    return chain()[-1].revision


def _assignments(text: str) -> dict[str, object]:
    """Module-level ``name = <literal>`` / ``name: type = <literal>`` of a script."""
    out: dict[str, object] = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                out[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return out
