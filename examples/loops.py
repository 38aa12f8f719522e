"""Loop instrumentation: streaming per-iteration tasks, or one batch at the loop's end."""

import itertools as it
import random
from time import sleep

from provwh import Flowcept, FlowceptLightweightLoop, FlowceptLoop

if __name__ == "__main__":
    with Flowcept(workflow_name="loops"):
        loop = FlowceptLoop(range(5))
        for item in loop:
            loss = random.random()
            sleep(0.005)
            loop.end_iter({"item": item, "loss": loss})

        loop = FlowceptLoop(range(5), loop_name="train_loop", item_name="epoch")
        for epoch in loop:
            loop.end_iter({"loss": 0.1 * (5 - epoch)})

        loop = FlowceptLightweightLoop([0, 1, 2, 3, 4], loop_name="eval_loop", item_name="batch")
        for batch in loop:
            loop.end_iter({"metric": batch * 2})

        stream = it.islice(it.count(), 0, 100)  # an iterator without __len__
        loop_a = FlowceptLoop(stream, loop_name="loop_a", item_name="i", items_length=100)
        for i in loop_a:
            loop_a.end_iter({"v": i * i})
        stream2 = it.islice(it.count(), 0, 100)
        loop_b = FlowceptLightweightLoop(
            stream2, loop_name="loop_b", item_name="i", items_length=100
        )
        for i in loop_b:
            loop_b.end_iter({"v": i * i})

    counts = {}
    for m in Flowcept.read_buffer_file():
        if m["type"] == "task":
            counts[m["activity_id"]] = counts.get(m["activity_id"], 0) + 1
    for name in sorted(counts):
        print(name, counts[name])
