"""Real captures for the report tests (a module of its own: conftest is not importable)."""

from __future__ import annotations

from provwh import Flowcept, FlowceptLoop, FlowceptTask, flowcept_task


@flowcept_task(output_names="y")
def square(x):
    return x * x


@flowcept_task
def pipeline(n):
    return [square(i) for i in range(n)]


@flowcept_task
def fail(x):
    raise ValueError(f"cannot handle {x}")


def run_small_workflow(name: str = "small", campaign_id: str | None = None) -> list[dict]:
    """pipeline → 3 × square, one failing task, a 4-iteration loop, a task with data and a path.

    Returns the run's records as read back from the buffer file.
    """
    with Flowcept(workflow_name=name, campaign_id=campaign_id):
        pipeline(3)
        try:
            fail(1)
        except ValueError:
            pass
        loop = FlowceptLoop(range(4), loop_name="train", item_name="epoch")
        for epoch in loop:
            loop.end_iter({"loss": 1 / (epoch + 1)})
        with FlowceptTask(activity_id="save", used={"dir": "out"}) as task:
            task.end(data=b"model-bytes", generated={"path": "out/model.pt"})
    return Flowcept.read_buffer_file()
