"""docs/schema.md is the reference generated from the metadata, and stays in step with it."""

from pathlib import Path

from provwh.warehouse import schema, schema_doc

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"


def test_schema_doc_is_up_to_date():
    assert DOC.read_text() == schema_doc.render(), (
        "docs/schema.md is stale: run `python -m provwh.warehouse.schema_doc > docs/schema.md`"
    )


def test_schema_doc_lists_every_table_and_column():
    text = schema_doc.render()
    for table in schema.metadata.tables.values():
        assert f"## `{table.name}`" in text
        for column in table.columns:
            assert f"| `{column.name}` |" in text
