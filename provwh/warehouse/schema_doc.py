"""The schema reference (docs/schema.md), generated from the one table definition.

``python -m provwh.warehouse.schema_doc > docs/schema.md``; a test keeps the file in step.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql

from provwh.warehouse import schema

_PG = postgresql.dialect()


def _type(column) -> str:
    try:
        return column.type.compile(dialect=_PG)
    except Exception:  # a type PostgreSQL cannot name: show SQLAlchemy's
        return type(column.type).__name__


def render() -> str:
    lines = [
        "# Warehouse schema reference",
        "",
        "Generated from `provwh/warehouse/schema.py` (the SQLAlchemy metadata that alembic and",
        "the DuckDB schema are built from) by `python -m provwh.warehouse.schema_doc`.",
        f"Schema revision: `{schema.SCHEMA_REVISION}`. Types are shown as PostgreSQL names;",
        "DuckDB uses its equivalents (JSON for JSONB). Times are UTC `TIMESTAMP`.",
        "",
        "Values JSON cannot hold are markers in JSON documents, as in batch files: bytes",
        '`{"$binary": {"base64": ..., "subType": "00"}}`, strings holding NUL `{"$nul": ...}`,',
        'NaN and the infinities `{"$float": "NaN" | "Infinity" | "-Infinity"}`. Strings holding',
        "NUL, or the text `\\u0000`, are stored escaped (`\\` doubled, NUL as `\\u0000`) in",
        "text columns and keys, so no two strings are stored alike; a user's dict",
        '`{"$nul": v}` is stored `{"$nul": [v]}` (docs/operations.md). In',
        "`task_values` a non-finite float is a `float` row whose `value_num` holds it (both",
        "engines' doubles keep NaN and the infinities); the query layer gives floats back.",
        "An id longer than 1,000 bytes (task, workflow, campaign, activity, parent, object and",
        "agent ids, agent names, edge ends, tags) is stored in its column as its digest key,",
        "`\\u0000\\#sha256:<hex>`, the whole id in the row's `extra` (docs/operations.md).",
        "",
    ]
    for table in sorted(schema.metadata.tables.values(), key=lambda t: t.name):
        lines += [f"## `{table.name}`", ""]
        if table.comment:
            lines += [table.comment, ""]
        pk = {c.name for c in table.primary_key.columns}
        lines += ["| column | type | null | notes |", "| --- | --- | --- | --- |"]
        for col in table.columns:
            notes = "primary key" if col.name in pk else ""
            if col.comment:
                notes = f"{notes}; {col.comment}" if notes else col.comment
            null = "" if col.nullable and col.name not in pk else "not null"
            lines.append(f"| `{col.name}` | {_type(col)} | {null} | {notes.replace('|', '/')} |")
        indexes = sorted(table.indexes, key=lambda i: i.name or "")
        if indexes:
            lines += [
                "",
                "Indexes: "
                + ", ".join(
                    f"`{i.name}` ({', '.join(map(_term, i.expressions))}){_where(i)}"
                    for i in indexes
                ),
            ]
        lines.append("")
    return "\n".join(lines)


def _term(expr) -> str:
    """A column's name, or an expression's SQL (``started_at DESC NULLS LAST``)."""
    return getattr(expr, "name", None) or str(expr)


def _where(index) -> str:
    """`` where <predicate>`` of a partial index (PostgreSQL's), else ""."""
    where = index.dialect_options["postgresql"].get("where")
    return "" if where is None else f" where `{where}`"


if __name__ == "__main__":
    print(render(), end="")
