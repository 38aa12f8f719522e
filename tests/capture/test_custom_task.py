from time import sleep
from uuid import uuid4

import pytest
from capture_helpers import run_captured, tasks_of, workflows_of

from provwh import Flowcept, FlowceptTask, Status, TaskObject, flowcept_task


def test_documented_example_reads_back_exactly_four_messages():
    flowcept = Flowcept(
        start_persistence=False, save_workflow=True, workflow_name="MyFirstWorkflow"
    )
    flowcept.start()
    agent1 = uuid4()
    FlowceptTask(activity_id="super_func1", used={"x": 1}, agent_id=agent1, tags=["tag1"]).send()
    with FlowceptTask(
        activity_id="super_func2", used={"y": 1}, agent_id=agent1, tags=["tag2"]
    ) as t2:
        sleep(0.01)
        t2.end(generated={"o": 3})
    t3 = FlowceptTask(activity_id="super_func3", used={"z": 1}, agent_id=agent1, tags=["tag3"])
    t3.end(generated={"w": 1})
    flowcept.stop()

    msgs = Flowcept.read_buffer_file()
    assert len(msgs) == 4
    (wf,) = workflows_of(msgs)
    assert wf["name"] == "MyFirstWorkflow"
    assert wf["status"] == "FINISHED" and wf["ended_at"] >= wf["started_at"]
    t1, t2r, t3r = tasks_of(msgs)
    assert [t["activity_id"] for t in (t1, t2r, t3r)] == [
        "super_func1",
        "super_func2",
        "super_func3",
    ]
    assert t1["ended_at"] == t1["started_at"] and "status" not in t1
    assert t2r["generated"] == {"o": 3} and t2r["status"] == "FINISHED"
    assert t2r["ended_at"] - t2r["started_at"] >= 0.01
    assert t3r["generated"] == {"w": 1}
    assert {t["agent_id"] for t in (t1, t2r, t3r)} == {str(agent1)}
    assert [t["tags"] for t in (t1, t2r, t3r)] == [["tag1"], ["tag2"], ["tag3"]]


def test_bytes_data_round_trip_and_getters():
    payload = bytes(range(256))

    def body():
        with FlowceptTask(activity_id="download", used={"url": "https://x"}) as t:
            t.end(data=payload, generated={"bytes": len(payload)})
        assert t.get_workflow_id() == Flowcept.current_workflow_id
        assert t.get_campaign_id() == Flowcept.campaign_id
        assert t.get_agent_id() is None
        assert t.get_id() == t._task.task_id

    _, msgs = run_captured(body)
    (task,) = tasks_of(msgs)
    assert task["data"] == payload
    assert task["generated"] == {"bytes": 256}


def test_auto_end_on_end_like_arguments():
    def body():
        FlowceptTask(activity_id="a", used={"x": 1}, generated={"y": 2})
        FlowceptTask(activity_id="b", stderr="oops", status=Status.ERROR)
        FlowceptTask(activity_id="c", ended_at=123.0)
        FlowceptTask(activity_id="d")  # never ended nor sent: not published

    _, msgs = run_captured(body)
    a, b, c = tasks_of(msgs)
    assert (a["activity_id"], a["generated"], a["status"]) == ("a", {"y": 2}, "FINISHED")
    assert (b["stderr"], b["status"]) == ("oops", "ERROR")
    assert (c["ended_at"], c["status"]) == (123.0, "FINISHED")


def test_end_is_published_once_and_send_after_end_is_noop():
    def body():
        t = FlowceptTask(activity_id="once")
        t.end(generated={"a": 1})
        t.end(generated={"a": 2})
        t.send()

    _, msgs = run_captured(body)
    (task,) = tasks_of(msgs)
    assert task["generated"] == {"a": 1}


def test_context_manager_error_and_parenting():
    @flowcept_task
    def child(x):
        return x

    def body():
        with pytest.raises(ZeroDivisionError):
            with FlowceptTask(activity_id="parent") as parent:
                child(1)
                _ = 1 / 0
        body.parent_id = parent.get_id()

    _, msgs = run_captured(body)
    by_act = {t["activity_id"]: t for t in tasks_of(msgs)}
    assert by_act["parent"]["status"] == "ERROR"
    assert by_act["parent"]["stderr"] == "division by zero"
    assert by_act["child"]["parent_task_id"] == body.parent_id


def test_private_task_object_is_live_view():
    def body():
        t = FlowceptTask(activity_id="x", used={"a": 1})
        assert isinstance(t._task, TaskObject)
        t._task.group_id = "g1"
        t._task.custom_metadata = {"k": "v"}
        t.end(custom_metadata={"k2": "v2"})

    _, msgs = run_captured(body)
    (task,) = tasks_of(msgs)
    assert task["group_id"] == "g1"
    assert task["custom_metadata"] == {"k": "v", "k2": "v2"}


def test_explicit_ids_and_without_controller():
    t = FlowceptTask(task_id="t-1", workflow_id="w-1", campaign_id="c-1", activity_id="a")
    assert (t.get_id(), t.get_workflow_id(), t.get_campaign_id()) == ("t-1", "w-1", "c-1")
    t.end()  # no controller: nothing captured, no error

    def body():
        FlowceptTask(task_id="t-2", workflow_id="w-2", activity_id="b").send()

    _, msgs = run_captured(body)
    (task,) = tasks_of(msgs)
    assert (task["task_id"], task["workflow_id"]) == ("t-2", "w-2")
