"""``DBAPI.dump_to_file``: records as a JSON, CSV or Parquet file, in a zip on request."""

from __future__ import annotations

import io
import os
import zipfile
from typing import Any

from provwh.query.results import to_json_safe

EXPORT_FORMATS = ("json", "csv", "parquet")


def write(
    records: list[dict[str, Any]], output_file: str, export_format: str, zipped: bool
) -> None:
    """Write ``records`` to ``output_file`` (a zip holding ``dump_file.<format>`` if ``zipped``)."""
    data = encode(records, export_format)
    directory = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(directory, exist_ok=True)
    if zipped:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"dump_file.{export_format}", data)
        data = buf.getvalue()
    with open(output_file, "wb") as fh:
        fh.write(data)


def encode(records: list[dict[str, Any]], fmt: str) -> bytes:
    import orjson

    if fmt == "json":
        return orjson.dumps(to_json_safe(records), option=orjson.OPT_INDENT_2)
    flat = [_flatten(r) for r in records]
    columns: list[str] = []
    seen: set[str] = set()
    for r in flat:
        for k in r:
            if k not in seen:
                seen.add(k)
                columns.append(k)
    if fmt == "csv":
        import csv

        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for r in flat:
            writer.writerow(["" if r.get(c) is None else _csv_cell(r.get(c)) for c in columns])
        return buf.getvalue().encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for c in columns:
        values = [r.get(c) for r in flat]
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {int, float} and kinds != {int, float}:
            arrays[c] = pa.array(values)
        elif kinds == {int, float}:
            arrays[c] = pa.array([None if v is None else float(v) for v in values])
        elif kinds in ({str}, {bool}, {bytes}, set()):
            arrays[c] = pa.array(values)
        else:  # mixed types in one column: as JSON text
            arrays[c] = pa.array(
                [None if v is None else orjson.dumps(to_json_safe(v)).decode() for v in values]
            )
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(arrays), sink)
    return sink.getvalue().to_pybytes()


def _flatten(rec: dict[str, Any], prefix: str = "", out: dict | None = None) -> dict[str, Any]:
    import orjson

    out = {} if out is None else out
    for k, v in rec.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            _flatten(v, key + ".", out)
        elif isinstance(v, (list, dict)):
            out[key] = orjson.dumps(to_json_safe(v)).decode()
        else:
            out[key] = v
    return out


def _csv_cell(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        import base64

        return base64.b64encode(bytes(v)).decode()
    return v
