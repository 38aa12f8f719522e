import argparse
import asyncio
import threading

import pytest
from capture_helpers import run_captured, tasks_of

from provwh import (
    Flowcept,
    flowcept,
    flowcept_task,
    lightweight_flowcept_task,
    telemetry_flowcept_task,
)


def only_task(records):
    tasks = tasks_of(records)
    assert len(tasks) == 1, tasks
    return tasks[0]


@pytest.fixture(params=["full", "lightweight"])
def deco(request):
    return flowcept_task if request.param == "full" else lightweight_flowcept_task


def test_documented_context_manager_example():
    @flowcept_task(output_names="z")
    def add_one(x):
        return x + 1

    ctl, msgs = run_captured(lambda: add_one(7), workflow_name="my_workflow")
    task = only_task(msgs)
    assert task["used"] == {"x": 7}
    assert task["generated"] == {"z": 8}
    assert task["activity_id"] == "add_one"
    assert task["status"] == "FINISHED"
    assert task["workflow_id"] == ctl.current_workflow_id
    assert task["campaign_id"] == ctl.campaign_id
    assert task["started_at"] <= task["ended_at"]
    assert isinstance(task["task_id"], str) and task["task_id"]


def test_binding_defaults_keywords_and_namespace(deco):
    @deco
    def f(a, b=2, *, c=3):
        return None

    @deco
    def g(x, y=10):
        return x

    ns = argparse.Namespace(lr=0.1, epochs=3)

    @deco
    def h(args):
        return 1

    def body():
        f(1)
        f(1, 5, c=9)
        g(4)
        g(y=1, x=2)
        h(ns)

    _, msgs = run_captured(body)
    used = [t["used"] for t in tasks_of(msgs)]
    assert used == [
        {"a": 1, "b": 2, "c": 3},
        {"a": 1, "b": 5, "c": 9},
        {"x": 4, "y": 10},
        {"x": 2, "y": 1},
        {"lr": 0.1, "epochs": 3},
    ]
    generated = [t.get("generated") for t in tasks_of(msgs)]
    assert generated == [None, None, {"arg_0": 4}, {"arg_0": 2}, {"arg_0": 1}]


def test_var_args_and_methods(deco):
    class Model:
        @deco(output_names="y")
        def step(self, x, *rest, **opts):
            return x

    def body():
        Model().step(1, 2, 3, k="v")

    _, msgs = run_captured(body)
    task = only_task(msgs)
    assert task["used"] == {"x": 1, "rest_0": 2, "rest_1": 3, "k": "v"}
    assert task["generated"] == {"y": 1}
    assert task["activity_id"] == "step"


def test_output_mapping(deco):
    @deco(output_names=["y", "z"])
    def pair(x):
        return x * 2, x * 3

    @deco
    def as_dict(x):
        return {"a": x, "b": [x]}

    @deco(output_names="only")
    def tup(x):
        return (x, x)

    @deco
    def nothing(x):
        return None

    def body():
        pair(5)
        as_dict(1)
        tup(2)
        nothing(3)

    _, msgs = run_captured(body)
    gens = [t.get("generated") for t in tasks_of(msgs)]
    assert gens == [{"y": 10, "z": 15}, {"a": 1, "b": [1]}, {"only": [2, 2]}, None]


def test_metadata_options_and_args_handler(deco):
    def drop_big(*args, **kwargs):
        return {k: v for k, v in kwargs.items() if k != "big"}

    @deco(tags="math", custom_metadata={"owner": "devX"}, subtype="step")
    def compute(x):
        return x

    @deco(args_handler=drop_big, output_names="result", tags=["a", "b"])
    def heavy(x, big):
        return x * 2

    def body():
        compute(1)
        heavy(x=3, big=list(range(1000)))

    _, msgs = run_captured(body)
    t1, t2 = tasks_of(msgs)
    assert t1["tags"] == ["math"]
    assert t1["custom_metadata"] == {"owner": "devX"}
    assert t1["subtype"] == "step"
    assert t2["used"] == {"x": 3}
    assert t2["generated"] == {"result": 6}
    assert t2["tags"] == ["a", "b"]


def test_call_time_workflow_and_campaign_ids(deco):
    seen = {}

    @deco
    def plain(x):
        return x

    @deco
    def declares(x, campaign_id=None):
        seen["campaign_id"] = campaign_id
        return x

    def body():
        plain(1, workflow_id="wf-other", campaign_id="camp-other")
        declares(2, campaign_id="camp-declared")

    ctl, msgs = run_captured(body)
    t1, t2 = tasks_of(msgs)
    assert (t1["workflow_id"], t1["campaign_id"]) == ("wf-other", "camp-other")
    assert t1["used"] == {"x": 1}
    assert t2["workflow_id"] == ctl.current_workflow_id
    assert t2["campaign_id"] == "camp-declared"
    assert t2["used"] == {"x": 2, "campaign_id": "camp-declared"}
    assert seen["campaign_id"] == "camp-declared"


def test_exception_is_recorded_and_reraised(deco):
    @deco
    def boom(x):
        raise ValueError(f"bad value {x}")

    def body():
        with pytest.raises(ValueError, match="bad value 3"):
            boom(3)

    _, msgs = run_captured(body)
    task = only_task(msgs)
    assert task["status"] == "ERROR"
    assert task["stderr"] == "bad value 3"
    assert task["used"] == {"x": 3}
    assert "generated" not in task


def test_async_functions(deco):
    @deco(output_names="y")
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    @deco
    async def fails():
        raise KeyError("k")

    async def main():
        results = await asyncio.gather(double(1), double(2))
        with pytest.raises(KeyError):
            await fails()
        return results

    _, msgs = run_captured(lambda: asyncio.run(main()))
    tasks = tasks_of(msgs)
    assert sorted(t["generated"]["y"] for t in tasks if t["status"] == "FINISHED") == [2, 4]
    assert [t["status"] for t in tasks].count("ERROR") == 1


def test_nested_tasks_record_parent():
    @lightweight_flowcept_task
    def leaf_light(x):
        return x

    @flowcept_task
    def inner(x):
        return leaf_light(x)

    @flowcept_task
    def outer(x):
        return inner(x) + inner(x)

    def body():
        outer(1)
        inner(2)

    _, msgs = run_captured(body)
    by_act = {}
    for t in tasks_of(msgs):
        by_act.setdefault(t["activity_id"], []).append(t)
    (outer_t,) = by_act["outer"]
    inners = by_act["inner"]
    assert "parent_task_id" not in outer_t
    assert [t.get("parent_task_id") for t in inners] == [outer_t["task_id"]] * 2 + [None]
    inner_ids = [t["task_id"] for t in inners]
    assert [t["parent_task_id"] for t in by_act["leaf_light"]] == inner_ids


def test_nested_async_tasks_keep_their_own_parents():
    @flowcept_task
    async def child(i):
        await asyncio.sleep(0.001 * (3 - i))
        return i

    @flowcept_task
    async def parent(i):
        return await child(i)

    async def main():
        await asyncio.gather(*(parent(i) for i in range(3)))

    _, msgs = run_captured(lambda: asyncio.run(main()))
    tasks = tasks_of(msgs)
    parents = {t["used"]["i"]: t["task_id"] for t in tasks if t["activity_id"] == "parent"}
    children = {t["used"]["i"]: t["parent_task_id"] for t in tasks if t["activity_id"] == "child"}
    assert children == parents


def test_many_threads_all_captured_with_unique_ids(deco):
    @deco
    def work(t, i):
        return t * 1000 + i

    def body():
        threads = [
            threading.Thread(target=lambda t=t: [work(t, i) for i in range(500)]) for t in range(8)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    ctl, msgs = run_captured(body)
    tasks = tasks_of(msgs)
    assert len(tasks) == 4000
    assert len({t["task_id"] for t in tasks}) == 4000
    assert {(t["used"]["t"], t["used"]["i"]) for t in tasks} == {
        (t, i) for t in range(8) for i in range(500)
    }
    assert {t["workflow_id"] for t in tasks} == {ctl.current_workflow_id}


def test_no_controller_means_no_capture(deco):
    @deco
    def f(x):
        return x + 1

    assert f(1) == 2  # runs normally, nothing to capture into


def test_instrumentation_disabled(settings_file, deco):
    settings_file("instrumentation:\n  enabled: false\n")

    @deco
    def f(x):
        return x + 1

    with Flowcept(workflow_name="off"):
        assert f(1) == 2
    msgs = Flowcept.read_buffer_file()
    assert tasks_of(msgs) == []


def test_telemetry_variant_always_captures_and_others_follow_settings():
    @telemetry_flowcept_task
    def with_tel(x):
        return x

    @flowcept_task
    def without(x):
        return x

    def body():
        with_tel(1)
        without(2)

    _, msgs = run_captured(body)
    t1, t2 = tasks_of(msgs)
    assert set(t1["telemetry_at_start"]) >= {"cpu", "memory", "process"}
    assert set(t1["telemetry_at_end"]) >= {"cpu", "memory", "process"}
    assert isinstance(t1["telemetry_at_end"]["cpu"]["percent_all"], (int, float))
    assert "telemetry_at_start" not in t2 and "telemetry_at_end" not in t2


def test_telemetry_enabled_in_settings(settings_file):
    settings_file("telemetry_capture:\n  enabled: true\n  disk: true\n  process_info: false\n")

    @flowcept_task
    def f(x):
        return x

    _, msgs = run_captured(lambda: f(1))
    task = only_task(msgs)
    assert "disk" in task["telemetry_at_start"]
    assert "process" not in task["telemetry_at_end"]


def test_flowcept_workflow_decorator():
    @flowcept_task
    def step(x):
        return x * 2

    @flowcept
    def main(n, scale=1.5):
        return [step(i) for i in range(n)]

    assert main(3) == [0, 2, 4]
    msgs = Flowcept.read_buffer_file()
    (wf,) = [m for m in msgs if m["type"] == "workflow"]
    assert wf["name"] == "main"
    assert wf["used"] == {"n": 3, "scale": 1.5}
    assert wf["status"] == "FINISHED"
    tasks = tasks_of(msgs)
    assert len(tasks) == 3
    assert {t["workflow_id"] for t in tasks} == {wf["workflow_id"]}


def test_flowcept_decorator_with_options_and_error():
    @flowcept(workflow_name="named", campaign_id="camp-1")
    def main():
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        main()
    (wf,) = [m for m in Flowcept.read_buffer_file() if m["type"] == "workflow"]
    assert (wf["name"], wf["campaign_id"], wf["status"]) == ("named", "camp-1", "ERROR")
