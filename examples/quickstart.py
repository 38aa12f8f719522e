"""Capture a small workflow on the embedded default and look at what was recorded.

Run with `make demo` (or `python examples/quickstart.py` in any folder): it writes
`flowcept_buffer.jsonl`, the spool folder `.provwh/spool` and the warehouse `provwh.duckdb`
in the current folder.
"""

import os
import random

from provwh import Flowcept, FlowceptLoop, FlowceptTask, flowcept_task


@flowcept_task(output_names="cleaned")
def clean(rows: int, drop_ratio: float = 0.1) -> int:
    return int(rows * (1 - drop_ratio))


@flowcept_task(output_names=["loss", "accuracy"])
def train(cleaned: int, lr: float) -> tuple:
    loss = round(1.0 / (1 + cleaned * lr), 4)
    return loss, round(1 - loss, 4)


def main() -> None:
    with Flowcept(workflow_name="quickstart", workflow_args={"seed": 7}) as f:
        random.seed(7)
        cleaned = clean(10_000)
        for epoch in (loop := FlowceptLoop(range(3), loop_name="epochs", item_name="epoch")):
            loss, acc = train(cleaned, lr=0.001 * (epoch + 1))
            loop.end_iter({"loss": loss, "accuracy": acc})
        with FlowceptTask(activity_id="report", used={"epochs": 3}) as t:
            t.end(generated={"final_accuracy": acc})
        workflow_id = f.current_workflow_id

    msgs = Flowcept.read_buffer_file()
    tasks = [m for m in msgs if m["type"] == "task"]
    print(f"workflow {workflow_id}: {len(tasks)} tasks captured")
    for t in tasks:
        took = (t["ended_at"] - t["started_at"]) * 1000
        print(
            f"  {t['activity_id']:16s} {t.get('status', ''):9s} {took:7.3f} ms  "
            f"used={t.get('used')}  generated={t.get('generated')}"
        )

    # The embedded default loaded the run into provwh.duckdb while it ran (stop() waits for it).
    import duckdb

    with duckdb.connect("provwh.duckdb", read_only=True) as db:
        rows = db.execute(
            "SELECT activity_id, count(*) AS n, "
            "round(avg(epoch(ended_at) - epoch(started_at)) * 1000, 3) AS avg_ms "
            "FROM tasks WHERE workflow_id = ? GROUP BY activity_id ORDER BY activity_id",
            [workflow_id],
        ).fetchall()
        values = db.execute(
            "SELECT count(*) FROM task_values v JOIN tasks t USING (task_id) "
            "WHERE t.workflow_id = ?",
            [workflow_id],
        ).fetchone()[0]
    print("\nwarehouse provwh.duckdb (activity, tasks, avg ms):")
    for row in rows:
        print(f"  {row[0]:16s} {row[1]:3d} {row[2]:8.3f}")
    print(f"  {values} used/generated values as typed rows")

    here = os.getcwd()
    print(f"\nfiles in {here}:")
    print("  flowcept_buffer.jsonl  the run's messages (Flowcept's buffer format)")
    print("  provwh.duckdb          the warehouse (tables, views v_*)")
    print("  .provwh/spool/done/    the batches the loader took them from")
    print("\ntry next, in that folder:")
    print("  provwh report --print                              the provenance card")
    print('  provwh sql "SELECT * FROM v_activity_stats"        SQL on the views')
    print("  provwh check                                       what is installed and enabled")


if __name__ == "__main__":
    main()
