"""Capture a block of code as one workflow with the context manager."""

from provwh import Flowcept, flowcept_task


@flowcept_task(output_names="z")
def add_one(x):
    return x + 1


if __name__ == "__main__":
    with Flowcept(workflow_name="my_workflow"):
        z = add_one(7)
        print(z)
