"""A producer of a distributed run: captures tasks into the shared spool folder only."""

import sys

from provwh import Flowcept, flowcept_task

workflow_id = sys.argv[1]


@flowcept_task
def double(x):
    return 2 * x


if __name__ == "__main__":
    flowcept = Flowcept(
        workflow_id=workflow_id,
        start_persistence=False,
        check_safe_stops=False,
        save_workflows=False,
    )
    flowcept.start()  # no database here: batches go to the spool folder
    y = double(21)
    print(f"Result: {y}")
    flowcept.stop()
