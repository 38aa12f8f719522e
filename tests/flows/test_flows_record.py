"""The run record: durations, outputs, artifacts and results, the JSON view."""

from __future__ import annotations

import json
import time
from pathlib import Path

from provwh.flows import flow, task


@task
def sleepy(seconds):
    time.sleep(seconds)
    return seconds


@task
def quick():
    return None


def test_durations_per_task_and_per_call():
    @flow
    def f():
        sleepy(0.02)
        sleepy(0.01)
        quick()

    run = f().execute()
    d = run.durations()
    assert set(d) == {
        "flow_name",
        "flow_id",
        "flow_status",
        "flow_duration",
        "flow_tasks",
        "tasks",
        "task_calls",
    }
    assert (d["flow_name"], d["flow_id"], d["flow_status"]) == ("f", run.flow_id, "FINISHED")
    assert d["flow_tasks"] == d["tasks"]
    assert list(d["tasks"]) == ["sleepy", "quick"]
    first, second = d["task_calls"]["sleepy"]
    assert 0.02 <= first < 0.2 and 0.01 <= second < 0.2
    assert d["tasks"]["sleepy"] == first + second
    assert len(d["task_calls"]["quick"]) == 1
    assert d["flow_duration"] == run.ended_at - run.started_at == run.flow_duration
    assert d["flow_duration"] >= first + second


def test_durations_before_a_run():
    @flow
    def f():
        return None

    d = f().durations()
    assert d["flow_duration"] is None and d["tasks"] == {} and d["flow_status"] == "SUBMITTED"


def test_artifacts_and_results():
    @task
    def produce(this_flow):
        this_flow.add_flow_artifact("weights", key="w", data=b"\x00\x01", artifact_type="bytes")
        return this_flow.add_flow_result("acc", "accuracy", value=0.9)

    @flow
    def f(this_flow):
        result = produce()
        this_flow.add_flow_artifact(data={"n": 1})
        return result

    run = f().execute()
    task_id = run.executed_tasks[0].task_id
    assert run.flow_return_value is run.flow_results[0]
    assert [
        (r["key"], r["description"], r["value"], r["task_id"], r["task_name"])
        for r in run.flow_results
    ] == [("acc", "accuracy", 0.9, task_id, "produce")]
    first, second = run.flow_artifacts
    assert (first["key"], first["data"], first["artifact_type"], first["task_id"]) == (
        "w",
        b"\x00\x01",
        "bytes",
        task_id,
    )
    assert (second["key"], second["data"], second["task_id"]) == ("artifact_2", {"n": 1}, None)
    out = run.flow_output()
    assert out["flow_return_value"] is run.flow_return_value
    assert out["flow_results"] == run.flow_results and out["flow_artifacts"] == run.flow_artifacts
    assert out["flow_id"] == run.flow_id and out["flow_error"] is None
    assert out["durations"]["flow_status"] == "FINISHED"


def test_json_is_json_safe_and_complete():
    class Odd:
        pass

    @task
    def t(x, flow_data):
        print("line")
        flow_data["path"] = Path("/tmp/x")
        flow_data["odd"] = Odd()
        flow_data["set"] = {3}
        return {"bytes": b"ab", "x": x}

    @flow(flow_config={"log_to_console": False})
    def f(x, this_flow):
        this_flow.add_flow_artifact("odd", data=Odd())
        return t(x)

    run = f(7).execute()
    doc = run.json()
    text = json.dumps(doc)  # plain json, no custom encoder
    assert json.loads(text)["flow_id"] == run.flow_id
    assert doc["flow_name"] == "f" and doc["flow_status"] == "FINISHED"
    assert doc["flow_args"] == {"x": 7}  # this_flow is injected, not an argument
    assert doc["flow_data"]["path"] == "/tmp/x" and doc["flow_data"]["set"] == [3]
    assert doc["flow_data"]["odd"].startswith("Odd_instance_id_")
    assert doc["flow_return_value"]["x"] == 7
    (tj,) = doc["executed_tasks"]
    assert tj["task_name"] == "t" and tj["status"] == "FINISHED" and tj["error"] is None
    assert tj["parent_task_id"] is None and tj["duration"] >= 0
    assert [e["msg"] for e in doc["captured_logs"]] == ["line"]
    assert doc["artifacts"][0]["data"].startswith("Odd_instance_id_")
    assert doc["durations"]["tasks"].keys() == {"t"}
    assert doc["flow_config"]["log_to_console"] is False
    assert doc["parent_flow_id"] is None and doc["flow_duration"] >= 0


def test_task_json():
    @task(raise_on_error=False)
    def bad():
        raise ValueError("nope")

    @flow
    def f():
        bad()

    (t,) = f().execute().executed_tasks
    doc = t.json()
    assert doc["status"] == "ERROR"
    assert doc["error"] == {"type": "ValueError", "message": "nope"}
    assert doc["return_value"] is None


def test_executed_tasks_keep_only_the_compact_record():
    big = list(range(1000))

    @task
    def t(data, task_data):
        task_data["copy"] = list(data)
        print("x")
        return len(data)

    @flow(flow_config={"log_to_console": False})
    def f():
        return t(big)

    (rec,) = f().execute().executed_tasks
    assert rec.task_args is None and rec.task_kwargs is None and rec.task_data is None
    assert rec._out is None and rec._err is None and rec._partial is None
    assert rec.task_return_value == 1000
