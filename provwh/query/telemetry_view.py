"""``sql/views/v_task_telemetry.sql``, generated from the typed telemetry columns.

The view unpivots every typed column of ``task_telemetry`` into one row per task and metric;
its three lists of metrics are written from ``TELEMETRY_COLUMNS`` and ``GPU_COLUMNS``, so a
column added there reaches the view. ``python -m provwh.query.telemetry_view`` rewrites the
file; a test keeps it in step.
"""

from __future__ import annotations

from provwh.warehouse.telemetry import GPU_COLUMNS, TELEMETRY_COLUMNS

VIEW_FILE = "views/v_task_telemetry.sql"

_HEAD = """\
-- v_task_telemetry: one row per task and telemetry metric, with its value at the task's
-- start, at its end and the difference (end - start). Metrics are the typed columns of
-- task_telemetry (CPU, memory, swap, disk, network, process, GPU), all as doubles; a metric
-- missing at both ends has no row. The full snapshots stay in tasks.telemetry_at_start/_end.
CREATE OR REPLACE VIEW v_task_telemetry AS
WITH k AS (
    SELECT DISTINCT task_id FROM task_telemetry
),
x AS (
    SELECT
        k.task_id,
        t.workflow_id,
        t.activity_id,
        t.started_at,
        m.metric,
"""

_TAIL = """\
    ) AS m (metric)
)
SELECT
    x.task_id,
    x.workflow_id,
    x.activity_id,
    x.started_at,
    x.metric,
    x.start_value,
    x.end_value,
    x.end_value - x.start_value AS delta
FROM x
WHERE x.start_value IS NOT NULL OR x.end_value IS NOT NULL;
"""


def metrics() -> list[str]:
    """The typed telemetry columns, in table order."""
    return [*TELEMETRY_COLUMNS, *GPU_COLUMNS]


def render() -> str:
    names = metrics()

    def case(alias: str, label: str) -> str:
        whens = "".join(
            f"            WHEN '{n}' THEN CAST({alias}.{n} AS DOUBLE PRECISION)\n" for n in names
        )
        return f"        CASE m.metric\n{whens}        END AS {label}"

    values = ",\n".join(f"        ('{n}')" for n in names)
    return (
        _HEAD
        + case("s", "start_value")
        + ",\n"
        + case("e", "end_value")
        + "\n    FROM k\n"
        + "    LEFT JOIN task_telemetry s ON s.task_id = k.task_id AND s.phase = 'start'\n"
        + "    LEFT JOIN task_telemetry e ON e.task_id = k.task_id AND e.phase = 'end'\n"
        + "    LEFT JOIN tasks t ON t.task_id = k.task_id\n"
        + "    CROSS JOIN (\n        VALUES\n"
        + values
        + "\n"
        + _TAIL
    )


if __name__ == "__main__":
    from provwh.core import resources

    path = resources.sql_dir().joinpath(*VIEW_FILE.split("/"))
    with open(str(path), "w", encoding="utf-8") as fh:
        fh.write(render())
    print(f"wrote {path} ({len(metrics())} metrics)")
