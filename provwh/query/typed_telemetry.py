"""Tasks whose telemetry is read from ``task_telemetry``'s typed columns, not its JSON.

A report over 200k tasks would decode 400k snapshot documents (most of its time and memory) to
use five figures of each. The typed columns hold those figures already: the tasks are read
without their snapshot columns, joined to the two telemetry rows, and each snapshot is
rebuilt from the columns asked for (``warehouse.telemetry.snapshot_from_columns``), nested as
the original was, so code written for full snapshots reads them unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from provwh.query.backends import Backend
from provwh.query.filters import FilterCompiler
from provwh.query.find import columns_for
from provwh.query.frag import sql
from provwh.query.paths import collection
from provwh.query.results import loads_json, to_record
from provwh.warehouse.telemetry import TELEMETRY_COLUMNS

# phase -> (the snapshot's field, the join's alias)
SNAPSHOTS = {"start": ("telemetry_at_start", "tel_s"), "end": ("telemetry_at_end", "tel_e")}
GPU = "gpu"  # the GPU section, whole (JSON)


def check_columns(columns: Sequence[str]) -> list[str]:
    names = list(columns)
    unknown = [c for c in names if c != GPU and c not in TELEMETRY_COLUMNS]
    if unknown:
        raise ValueError(
            f"unknown telemetry column(s) {unknown}; known: {[*TELEMETRY_COLUMNS, GPU]}"
        )
    return names


def tasks_with_typed_telemetry(
    backend: Backend, filter: dict | None, columns: Sequence[str]
) -> list[dict[str, Any]]:
    """``find`` on tasks (default order), ``telemetry_at_start`` / ``_end`` rebuilt from
    ``columns`` (``TELEMETRY_COLUMNS`` names, and ``"gpu"`` for the GPU section)."""
    from provwh.warehouse.telemetry import snapshot_from_columns

    names = check_columns(columns)
    figures = [c for c in names if c != GPU]
    coll = collection("tasks")
    comp = FilterCompiler(coll, backend.dialect)
    task_cols = [
        c for c in columns_for(coll, None, backend.dialect)
        if c.split(".")[-1].strip('"') not in {f for f, _ in SNAPSHOTS.values()}
    ]  # fmt: skip
    phase_cols, joins = [], []
    for phase, (_field, a) in SNAPSHOTS.items():
        phase_cols += [f'{a}."{c}" AS "{a}_{c}"' for c in names] + [f'{a}.phase AS "{a}__row"']
        joins.append(
            f" LEFT JOIN task_telemetry {a} ON {a}.task_id = t.task_id AND {a}.phase = '{phase}'"
        )
    q = sql(
        f"SELECT {', '.join(task_cols + phase_cols)} FROM tasks t{''.join(joins)}"
        " WHERE {} ORDER BY {}",
        comp.where(filter),
        comp.order_by(None),
    )
    out_names, rows = backend.query(q)
    n_task = len(task_cols)
    task_names = out_names[:n_task]
    slots = {name: i for i, name in enumerate(out_names)}
    records = []
    for row in rows:
        rec = to_record(coll, task_names, row[:n_task])
        for field, a in SNAPSHOTS.values():
            if row[slots[f"{a}__row"]] is None:
                continue  # no snapshot at this phase
            values = {c: row[slots[f"{a}_{c}"]] for c in figures}
            gpu = row[slots[f"{a}_{GPU}"]] if GPU in names else None
            if isinstance(gpu, (str, bytes, memoryview)):
                gpu = loads_json(gpu)
            rec[field] = snapshot_from_columns(values, gpu)
        records.append(rec)
    return records
