"""Start and stop capture explicitly, e.g. when a workflow spans several files."""

from provwh import Flowcept, flowcept_task


@flowcept_task
def double(x):
    return 2 * x


if __name__ == "__main__":
    flowcept = Flowcept(workflow_name="manual_example")
    flowcept.start()
    y = double(21)
    print("Result:", y)
    flowcept.stop()
