"""Flow runs as provenance: workflow and task records, in a session or a session of their own."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from provwh import Flowcept, flowcept_task, lightweight_flowcept_task
from provwh.capture import context
from provwh.flows import flow, task

HOST_KEYS = ("hostname", "node_name", "login_name")


def _plain(rec):
    return {k: v for k, v in rec.items() if k not in HOST_KEYS}


def _by_type(records, kind, workflow_id=None):
    return [
        r
        for r in records
        if r["type"] == kind and (workflow_id is None or r["workflow_id"] == workflow_id)
    ]


@task(output_names="y")
def double(x, this_task, task_data):
    print(f"doubling {x}")
    this_task.log_error("careful")
    return 2 * x


@flow(flow_config={"log_to_console": False})
def pipeline(x, this_flow, flow_data):
    flow_data["y"] = double(x)
    this_flow.add_flow_result("y", "doubled", value=flow_data["y"])
    this_flow.add_flow_artifact("model", key="m", data=b"blob", artifact_type="bytes")
    return {"y": flow_data["y"]}


def test_flow_in_a_session_writes_a_workflow_and_its_tasks(spooled):
    with Flowcept(workflow_name="session") as ctl:
        run = pipeline(21).execute()
    records = spooled(ctl)
    session_wf, flow_wf = _by_type(records, "workflow")
    assert session_wf["workflow_id"] == ctl.current_workflow_id
    assert list(flow_wf)[0] == "type"
    assert flow_wf == {
        "type": "workflow",
        "workflow_id": run.flow_id,
        "name": "pipeline",
        "subtype": "flow",
        "parent_workflow_id": ctl.current_workflow_id,
        "campaign_id": ctl.campaign_id,
        "started_at": run.started_at,
        "status": "FINISHED",
        "used": {"x": 21},
        "ended_at": run.ended_at,
        "generated": {"y": 42},
        "custom_metadata": {
            "results": [
                {
                    "key": "y",
                    "description": "doubled",
                    "value": 42,
                    "task_id": None,
                    "task_name": None,
                    "created_at": run.flow_results[0]["created_at"],
                }
            ],
            "artifacts": [
                {
                    "key": "m",
                    "description": "model",
                    "artifact_type": "bytes",
                    "task_id": None,
                    "task_name": None,
                    "created_at": run.flow_artifacts[0]["created_at"],
                }
            ],
        },
    }
    (t,) = run.executed_tasks
    (rec,) = _by_type(records, "task")
    assert list(rec)[0] == "type"
    assert _plain(rec) == {
        "type": "task",
        "task_id": t.task_id,
        "workflow_id": run.flow_id,
        "campaign_id": ctl.campaign_id,
        "activity_id": "double",
        "used": {"x": 21},  # this_task / task_data are injected, not arguments
        "started_at": t.started_at,
        "ended_at": t.ended_at,
        "status": "FINISHED",
        "generated": {"y": 42},
        "stdout": "doubling 21",
        "stderr": "careful",
    }
    # the buffer dump has every task record of the run
    dumped = Flowcept.read_buffer_file()
    assert [_plain(r) for r in _by_type(dumped, "task")] == [_plain(rec)]


def test_flow_workflow_records_are_in_the_buffer_dump():
    with Flowcept(workflow_name="session"):
        run = pipeline(1).execute()
    ids = [r["workflow_id"] for r in _by_type(Flowcept.read_buffer_file(), "workflow")]
    assert run.flow_id in ids


def test_nested_tasks_and_flowcept_tasks_get_parent_ids(spooled):
    @flowcept_task
    def plain_capture(v):
        return v

    @task
    def inner(v):
        return plain_capture(v)

    @task
    def outer(v):
        return inner(v) + 1

    @flow
    def f():
        return outer(1)

    with Flowcept(workflow_name="s") as ctl:
        run = f().execute()
    tasks = {r["activity_id"]: r for r in _by_type(spooled(ctl), "task")}
    outer_t, inner_t = run.executed_tasks
    assert "parent_task_id" not in tasks["outer"]
    assert tasks["inner"]["parent_task_id"] == outer_t.task_id
    assert tasks["plain_capture"]["parent_task_id"] == inner_t.task_id
    # a @flowcept_task inside a flow run belongs to the run's workflow, not the session's
    assert tasks["plain_capture"]["workflow_id"] == run.flow_id
    assert tasks["inner"]["workflow_id"] == tasks["outer"]["workflow_id"] == run.flow_id


def test_capture_decorators_inside_a_flow_run_record_the_runs_workflow(spooled):
    """Every variant, sync and async, records its task in the flow run's workflow."""

    @flowcept_task
    def full(v):
        return v

    @flowcept_task
    async def full_async(v):
        return v

    @lightweight_flowcept_task
    def light(v):
        return v

    @lightweight_flowcept_task
    async def light_async(v):
        return v

    @flow
    async def f():
        return full(1), await full_async(2), light(3), await light_async(4)

    with Flowcept(workflow_name="s") as ctl:
        run = f().execute()
    assert run.flow_return_value == (1, 2, 3, 4)
    tasks = {r["activity_id"]: r for r in _by_type(spooled(ctl), "task")}
    assert {a: t["workflow_id"] for a, t in tasks.items()} == {
        "full": run.flow_id,
        "full_async": run.flow_id,
        "light": run.flow_id,
        "light_async": run.flow_id,
    }
    assert run.flow_id != ctl.current_workflow_id


def test_nested_flows_link_workflows_and_tasks(spooled):
    @task
    def leaf():
        return 1

    @flow
    def inner():
        return leaf()

    @task
    def launcher():
        return inner().execute()

    @flow
    def outer():
        return inner().execute(), launcher()

    with Flowcept(workflow_name="s") as ctl:
        run = outer().execute()
    direct, from_task = run.flow_return_value
    records = spooled(ctl)
    wfs = {r["workflow_id"]: r for r in _by_type(records, "workflow")}
    assert wfs[run.flow_id]["parent_workflow_id"] == ctl.current_workflow_id
    assert wfs[direct.flow_id]["parent_workflow_id"] == run.flow_id
    assert wfs[from_task.flow_id]["parent_workflow_id"] == run.flow_id
    assert {wfs[i]["status"] for i in (run.flow_id, direct.flow_id, from_task.flow_id)} == {
        "FINISHED"
    }
    (direct_leaf,) = _by_type(records, "task", direct.flow_id)
    (task_leaf,) = _by_type(records, "task", from_task.flow_id)
    assert "parent_task_id" not in direct_leaf
    assert task_leaf["parent_task_id"] == run.executed_tasks[0].task_id  # the launcher


def test_errors_are_recorded_with_one_status(spooled):
    @task(raise_on_error=False)
    def soft():
        raise ValueError("soft")

    @task
    def hard():
        raise KeyError("hard")

    @flow(flow_config={"log_to_console": False})
    def f():
        soft()
        hard()

    with Flowcept(workflow_name="s") as ctl:
        run = f()
        with pytest.raises(KeyError):
            run.execute()
    records = spooled(ctl)
    soft_r, hard_r = _by_type(records, "task", run.flow_id)
    assert (soft_r["status"], soft_r["stderr"]) == ("ERROR", "ValueError: soft")
    assert (hard_r["status"], hard_r["stderr"]) == ("ERROR", "KeyError: 'hard'")
    assert "generated" not in soft_r and "ended_at" in hard_r
    wf = _by_type(records, "workflow", run.flow_id)[0]
    assert wf["status"] == run.flow_status == run.durations()["flow_status"] == "ERROR"
    assert wf["custom_metadata"]["error"] == {"type": "KeyError", "message": "'hard'"}
    assert run.flow_error is not None


def test_flows_in_threads_record_into_one_session(spooled):
    @task
    def t(i):
        return i

    @flow
    def f(n):
        return [t(i) for i in range(n)]

    runs = [f(10 + k) for k in range(4)]
    with Flowcept(workflow_name="s") as ctl:
        threads = [threading.Thread(target=r.execute) for r in runs]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    records = spooled(ctl)
    for k, run in enumerate(runs):
        recs = _by_type(records, "task", run.flow_id)
        assert sorted(r["used"]["i"] for r in recs) == list(range(10 + k))
        assert {r["task_id"] for r in recs} == {x.task_id for x in run.executed_tasks}
        assert _by_type(records, "workflow", run.flow_id)[0]["status"] == "FINISHED"


def test_async_gather_in_a_session(spooled):
    @task
    async def a(i):
        await asyncio.sleep(0.001)
        return i

    @flow
    async def f():
        return await asyncio.gather(*(a(i) for i in range(5)))

    with Flowcept(workflow_name="s") as ctl:
        run = f().execute()
    recs = _by_type(spooled(ctl), "task", run.flow_id)
    assert sorted(r["generated"]["arg_0"] for r in recs) == [0, 1, 2, 3, 4]
    assert all("parent_task_id" not in r for r in recs)


def test_standalone_flow_with_capture_opens_its_own_session():
    @task
    def t(x):
        print("in t")
        return x

    @flow(flow_config={"capture": True, "log_to_console": False})
    def solo(x):
        return t(x)

    run = solo(5).execute()
    assert context.running_controllers() == []
    records = Flowcept.read_buffer_file()
    (wf,) = _by_type(records, "workflow")
    assert wf["workflow_id"] == run.flow_id
    assert (wf["name"], wf["subtype"], wf["status"]) == ("solo", "flow", "FINISHED")
    assert wf["used"] == {"x": 5} and wf["generated"] == {"arg_0": 5}
    assert wf["started_at"] == run.started_at and wf["ended_at"] >= run.ended_at
    assert "parent_workflow_id" not in wf
    (rec,) = _by_type(records, "task")
    assert (rec["workflow_id"], rec["used"], rec["stdout"]) == (run.flow_id, {"x": 5}, "in t")
    assert rec["campaign_id"] == wf["campaign_id"]


def test_standalone_captured_flow_failure():
    @flow(flow_config={"capture": True, "raise_flow_error": False, "log_to_console": False})
    def solo():
        raise RuntimeError("x")

    run = solo().execute()
    (wf,) = _by_type(Flowcept.read_buffer_file(), "workflow")
    assert wf["status"] == "ERROR" == run.flow_status
    assert wf["custom_metadata"] == {"error": {"type": "RuntimeError", "message": "x"}}
    assert context.running_controllers() == []


def test_standalone_flow_without_capture_records_nothing():
    @task
    def t():
        return 1

    @flow
    def f():
        return t()

    f().execute()
    assert not os.path.exists(".provwh") and not os.path.exists("flowcept_buffer.jsonl")
    assert context.running_controllers() == []


def test_orphan_tasks_in_a_session(spooled):
    @task
    def lone(x, this_flow):
        return x

    lone(1)  # no session: nothing anywhere
    with Flowcept(workflow_name="s") as ctl:
        lone(2)
    (rec,) = _by_type(spooled(ctl), "task")
    assert rec["subtype"] == "orphan_task"
    assert rec["workflow_id"] == ctl.current_workflow_id and rec["used"] == {"x": 2}


def test_captured_text_reaches_records_even_without_memory_logs(spooled):
    @task
    def t(this_task):
        print("a")
        this_task.log_info("b")

    @flow(flow_config={"log_to_memory": False, "log_to_console": False})
    def f():
        t()

    with Flowcept(workflow_name="s") as ctl:
        run = f().execute()
    (rec,) = _by_type(spooled(ctl), "task", run.flow_id)
    assert rec["stdout"] == "a\nb"
    assert run.captured_logs() == []


def test_disabled_instrumentation_records_nothing(set_env, spooled):
    set_env(PROVWH_INSTRUMENTATION_ENABLED="false")

    @task
    def t():
        return 1

    @flow
    def f():
        return t()

    with Flowcept(workflow_name="s") as ctl:
        run = f().execute()
    assert run.flow_status == "FINISHED"
    assert _by_type(spooled(ctl), "task") == []


def test_settings_can_ask_standalone_flows_to_record():
    # ``flows.capture`` is not in this version's settings schema: emulate a settings file
    # that sets it, as the schema will once the key is added.
    from provwh.core import config

    config.get_settings()._values["flows.capture"] = True

    @flow(flow_config={"log_to_console": False})
    def solo():
        return 1

    run = solo().execute()
    (wf,) = _by_type(Flowcept.read_buffer_file(), "workflow")
    assert wf["workflow_id"] == run.flow_id and wf["status"] == "FINISHED"
