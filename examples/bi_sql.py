"""What a BI tool sees: plain SQL over the warehouse views (here on the embedded DuckDB file).

The same queries run on PostgreSQL (`provwh sql --postgres URL "..."`, or a BI tool connected
with a role that `provwh db grant-readonly ROLE` gave read access to the views).
"""

from provwh import Flowcept, flowcept_task


@flowcept_task(output_names="path")
def extract(n: int) -> str:
    return f"/data/raw_{n}.csv"


@flowcept_task(output_names="rows")
def transform(path: str, scale: float) -> int:
    return int(len(path) * scale)


if __name__ == "__main__":
    with Flowcept(workflow_name="etl"):
        for n in range(3):
            transform(extract(n), scale=10.0)

    db = Flowcept.db
    stats = db.sql(
        "SELECT activity_id, task_count, finished_count FROM v_activity_stats ORDER BY activity_id"
    )
    print(stats.to_string(index=False))
    summary = db.sql("SELECT task_count, finished_count, error_count FROM v_workflow_summary")
    print(summary.to_string(index=False))
    lineage = db.sql(
        "SELECT producer_activity_id, consumer_activity_id, count(*) AS links "
        "FROM v_data_lineage GROUP BY 1, 2"
    )
    print(lineage.to_string(index=False))
