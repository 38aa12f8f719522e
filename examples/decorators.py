"""The decorators: @flowcept for a main function and the @flowcept_task family."""

import argparse

from provwh import (
    flowcept,
    flowcept_task,
    lightweight_flowcept_task,
    telemetry_flowcept_task,
)

ARGS_TO_DROP = ["very_big_list", "super_large_matrix"]


def custom_args_handler(*args, **kwargs):
    """Keep every argument except the big ones (call the function with keyword arguments)."""
    handled = {f"arg_{i}": arg for i, arg in enumerate(args)}
    handled.update(kwargs)
    for key in ARGS_TO_DROP:
        handled.pop(key, None)
    return handled


@flowcept_task(output_names="y")
def mult_two(x: int) -> int:
    return 2 * x


@flowcept_task(output_names=["y", "z"], tags=["math", "demo"], custom_metadata={"owner": "devX"})
def compute(x):
    return x * 2, x * 3


@flowcept_task(args_handler=custom_args_handler, output_names="result")
def heavy_function(x, very_big_list, super_large_matrix):
    return x * 2


@flowcept_task
def configure(args):
    return {"configured": True}


@telemetry_flowcept_task
def train_step(batch):
    return 0.123


@lightweight_flowcept_task
def fast_op(x):
    return x + 1


@flowcept
def main():
    mult_two(21)  # used={"x": 21}, generated={"y": 42}
    compute(5)  # generated={"y": 10, "z": 15}
    heavy_function(x=3, very_big_list=list(range(10_000)), super_large_matrix=[[0] * 100] * 100)
    configure(argparse.Namespace(lr=0.01, epochs=3))  # used={"lr": 0.01, "epochs": 3}
    train_step([1, 2, 3])  # with telemetry_at_start / telemetry_at_end
    for i in range(1000):
        fast_op(i)


if __name__ == "__main__":
    main()
    from provwh import Flowcept

    tasks = [m for m in Flowcept.read_buffer_file() if m["type"] == "task"]
    for t in tasks[:5]:
        print(t["activity_id"], t["used"], t.get("generated"), t.get("tags"))
    print("tasks:", len(tasks))
