import itertools as it

import pytest
from capture_helpers import run_captured, tasks_of

from provwh import Flowcept, FlowceptLightweightLoop, FlowceptLoop, flowcept_task

LOOPS = [FlowceptLoop, FlowceptLightweightLoop]


def split(records, loop_name="loop"):
    tasks = tasks_of(records)
    loops = [t for t in tasks if t.get("subtype") == "whole_loop"]
    iters = [t for t in tasks if t.get("subtype") == "iteration"]
    return loops, iters


@pytest.mark.parametrize("cls", LOOPS)
def test_records_per_iteration(cls):
    seen = []
    loops_made = []

    def body():
        loop = cls(range(5), loop_name="train_loop", item_name="epoch")
        loops_made.append(loop)
        for epoch in loop:
            seen.append(loop.get_current_iteration_id())
            loop.end_iter({"loss": 0.1 * (5 - epoch)})

    ctl, msgs = run_captured(body)
    loops, iters = split(msgs)
    assert loops == []  # as Flowcept 1.0.3: one record per iteration and nothing else
    assert len(tasks_of(msgs)) == len(iters) == 5
    assert [t["used"] for t in iters] == [{"epoch": i, "i": i} for i in range(5)]
    assert [t["generated"] for t in iters] == [{"loss": 0.1 * (5 - i)} for i in range(5)]
    assert {t["activity_id"] for t in iters} == {"train_loop_iteration"}
    assert {t["group_id"] for t in iters} == {loops_made[0].whole_loop_task_id}
    assert [t for t in iters if "parent_task_id" in t] == []  # a top-level loop
    assert {t["status"] for t in iters} == {"FINISHED"}
    assert [t["task_id"] for t in iters] == seen
    assert {t["workflow_id"] for t in iters} == {ctl.current_workflow_id}
    starts = [t["started_at"] for t in iters]
    assert starts == sorted(starts)
    assert all(t["ended_at"] >= t["started_at"] for t in iters)


@pytest.mark.parametrize("cls", LOOPS)
def test_int_sized_and_iterator_inputs(cls):
    def body():
        assert list(cls(3, loop_name="ints")) == [0, 1, 2]
        assert list(cls(["a", "b"], loop_name="sized")) == ["a", "b"]
        stream = it.islice(it.count(), 0, 4)
        assert list(cls(stream, loop_name="iter", items_length=4)) == [0, 1, 2, 3]

    _, msgs = run_captured(body)
    loops, iters = split(msgs)
    assert loops == []
    assert len({t["group_id"] for t in iters}) == 3
    counts = {}
    for t in iters:
        counts[t["activity_id"]] = counts.get(t["activity_id"], 0) + 1
    assert counts == {"ints_iteration": 3, "sized_iteration": 2, "iter_iteration": 4}


def test_iterator_without_length():
    def body():
        assert list(FlowceptLoop(iter([5, 6]), loop_name="m")) == [5, 6]  # materialized
        with pytest.raises(ValueError, match="items_length"):
            FlowceptLightweightLoop(iter([1, 2]))

    _, msgs = run_captured(body)
    _, iters = split(msgs)
    assert [t["used"]["item"] for t in iters] == [5, 6]


@pytest.mark.parametrize("cls", LOOPS)
def test_capture_disabled_and_instrumentation_disabled(cls, settings_file):
    def body():
        loop = cls(range(3), capture_enabled=False)
        for i in loop:
            loop.end_iter({"x": i})

    _, msgs = run_captured(body)
    assert tasks_of(msgs) == []

    settings_file("instrumentation:\n  enabled: false\n")
    _, msgs = run_captured(body)
    assert tasks_of(msgs) == []


@pytest.mark.parametrize("cls", LOOPS)
def test_break_is_closed_at_stop(cls):
    def body():
        for i in cls(range(10), loop_name="early"):
            if i == 2:
                break

    _, msgs = run_captured(body)
    loops, iters = split(msgs)
    assert loops == []
    assert [t["used"]["i"] for t in iters] == [0, 1, 2]
    assert [t["status"] for t in iters] == ["FINISHED"] * 3


def test_loop_inside_task_and_lightweight_publishes_at_end():
    @flowcept_task
    def train():
        for _ in FlowceptLoop(2, loop_name="inner"):
            pass

    def body():
        train()
        loop = FlowceptLightweightLoop([1, 2, 3], loop_name="lw")
        for _ in loop:
            pass
        assert len(loop._items) == 0  # released after publishing

    _, msgs = run_captured(body)
    tasks = tasks_of(msgs)
    (train_t,) = [t for t in tasks if t["activity_id"] == "train"]
    inner = [t for t in tasks if t["activity_id"] == "inner_iteration"]
    assert [t["parent_task_id"] for t in inner] == [train_t["task_id"]] * 2
    assert [t for t in tasks if t["activity_id"] == "inner"] == []
    lw_iters = [t for t in tasks if t["activity_id"] == "lw_iteration"]
    assert [t["used"]["item"] for t in lw_iters] == [1, 2, 3]


def test_loop_without_controller_is_plain_iteration():
    loop = FlowceptLoop(range(3))
    out = []
    for i in loop:
        loop.end_iter({"v": i})
        out.append(i)
    assert out == [0, 1, 2]
    assert len(loop) == 3
    assert Flowcept.current_workflow_id is None or loop._ctl is None


@pytest.mark.parametrize("cls", LOOPS)
def test_whole_loop_record_on_request(cls):
    loops_made = []

    @flowcept_task
    def train():
        loop = cls(range(3), loop_name="epochs", item_name="epoch", whole_loop=True)
        loops_made.append(loop)
        for epoch in loop:
            loop.end_iter({"loss": 1 / (epoch + 1)})

    _, msgs = run_captured(train)
    loops, iters = split(msgs)
    (train_t,) = [t for t in tasks_of(msgs) if t["activity_id"] == "train"]
    (whole,) = loops
    assert whole["task_id"] == loops_made[0].whole_loop_task_id
    assert (whole["activity_id"], whole["status"]) == ("epochs", "FINISHED")
    assert (whole["used"], whole["generated"]) == ({"items_length": 3}, {"iterations": 3})
    assert whole["parent_task_id"] == train_t["task_id"]
    assert [t["parent_task_id"] for t in iters] == [whole["task_id"]] * 3
    assert [t["group_id"] for t in iters] == [whole["task_id"]] * 3
    assert whole["started_at"] == iters[0]["started_at"]
    assert whole["ended_at"] == iters[-1]["ended_at"]
    assert len(tasks_of(msgs)) == 5


@pytest.mark.parametrize("cls", LOOPS)
def test_explicit_parent_task_id(cls):
    def body():
        for _ in cls(["a", "b"], loop_name="p", parent_task_id="outer-1"):
            pass

    _, msgs = run_captured(body)
    _, iters = split(msgs)
    assert [t["parent_task_id"] for t in iters] == ["outer-1", "outer-1"]
    assert [t["used"] for t in iters] == [{"item": "a", "i": 0}, {"item": "b", "i": 1}]


@pytest.mark.parametrize("cls", LOOPS)
def test_loop_duration_from_its_iterations(cls):
    """The loop's run is its iterations' group: first start to last end."""
    from time import sleep

    def body():
        for _ in cls(range(3), loop_name="timed"):
            sleep(0.01)

    _, msgs = run_captured(body)
    _, iters = split(msgs)
    (group,) = {t["group_id"] for t in iters}
    starts = [t["started_at"] for t in iters]
    ends = [t["ended_at"] for t in iters]
    assert ends[:-1] == starts[1:]  # an iteration ends when the next starts
    assert max(ends) - min(starts) >= 0.03
