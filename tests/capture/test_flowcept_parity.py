"""Flowcept 1.0.3 code that reads the controller and its records, run as Flowcept users write it
(issue 16, "Controller and records")."""

from capture_helpers import tasks_of

from provwh import Flowcept, flowcept_task


@flowcept_task(output_names="y")
def double(x):
    return 2 * x


def test_class_buffer_while_running():
    assert Flowcept.buffer is None
    with Flowcept(workflow_name="buffer_on_class") as f:
        double(1)
        double(2)
        assert len(Flowcept.buffer) == 3
        types = [msg["type"] for msg in Flowcept.buffer]
        assert types == ["workflow", "task", "task"]
        assert [m["generated"] for m in Flowcept.buffer if m["type"] == "task"] == [
            {"y": 2},
            {"y": 4},
        ]
        assert f.buffer == Flowcept.buffer
    assert Flowcept.buffer is None
    assert len(tasks_of(f.buffer)) == 2
    assert f.buffer[0]["status"] == "FINISHED"


def test_get_current_instance():
    assert Flowcept.get_current_instance() is None
    f = Flowcept(workflow_name="manual")
    f.start()
    assert Flowcept.get_current_instance() is f
    f.stop()
    assert Flowcept.get_current_instance() is None
    with Flowcept(workflow_name="outer") as outer:
        assert Flowcept.get_current_instance() is outer
        with Flowcept(workflow_name="inner") as inner:
            assert Flowcept.get_current_instance() is inner  # the one tasks are recorded into
        assert Flowcept.get_current_instance() is outer
    assert Flowcept.get_current_instance() is None


def test_services_status_spool_only():
    assert Flowcept.services_status() == {"spool": "ok"}
    assert Flowcept.services_alive() is True


def test_services_status_unreachable_services(set_env):
    set_env(
        PROVWH_POSTGRES_URL="postgresql://alice:hunter2@127.0.0.1:1/db",
        PROVWH_BUFFER_TRANSPORT="redis",
        PROVWH_REDIS_URL="redis://127.0.0.1:1/0",
    )
    status = Flowcept.services_status()
    assert status == {"spool": "ok", "redis": "unreachable", "postgres": "unreachable"}
    assert all(v == "ok" for v in status.values()) is False


def test_flowcept_task_capture_telemetry_false(set_env):
    from provwh import FlowceptTask

    set_env(PROVWH_TELEMETRY_ENABLED="true")
    with Flowcept(workflow_name="telemetry_opt_out"):
        with FlowceptTask(activity_id="measured", used={"x": 1}) as measured:
            measured.end(generated={"y": 1})
        quiet = FlowceptTask(activity_id="quiet", used={"x": 2}, capture_telemetry=False)
        quiet.end(generated={"y": 2})
        FlowceptTask(activity_id="quiet_at_once", capture_telemetry=False, generated={"y": 3})
    measured_rec, quiet_rec, at_once_rec = tasks_of(Flowcept.read_buffer_file())
    assert measured_rec["activity_id"] == "measured"
    assert set(measured_rec["telemetry_at_start"]) >= {"cpu", "memory"}
    assert set(measured_rec["telemetry_at_end"]) >= {"cpu", "memory"}
    for rec, activity in ((quiet_rec, "quiet"), (at_once_rec, "quiet_at_once")):
        assert rec["activity_id"] == activity
        assert rec["status"] == "FINISHED"
        assert "telemetry_at_start" not in rec
        assert "telemetry_at_end" not in rec
    assert quiet_rec["generated"] == {"y": 2}


def test_ml_types_and_prov_agent_subtypes():
    from provwh import PROV_AGENT, FlowceptTask, ML_Types

    assert [m.value for m in ML_Types] == ["ml_workflow", "dataprep", "learning", "model_selection"]
    assert [m.value for m in PROV_AGENT] == ["ai_model_invocation", "agent_tool"]
    assert ML_Types.DATA_PREP == "dataprep"

    @flowcept_task(subtype=ML_Types.DATA_PREP)
    def prepare(n):
        return list(range(n))

    with Flowcept(workflow_name="ml", workflow_subtype=ML_Types.WORKFLOW):
        prepare(2)
        FlowceptTask(activity_id="llm_call", subtype=PROV_AGENT.AI_MODEL_INVOCATION).send()
    msgs = Flowcept.read_buffer_file()
    prep, llm = tasks_of(msgs)
    assert type(prep["subtype"]) is str and prep["subtype"] == "dataprep"
    assert type(llm["subtype"]) is str and llm["subtype"] == "ai_model_invocation"
    (wf,) = [m for m in msgs if m["type"] == "workflow"]
    assert type(wf["subtype"]) is str and wf["subtype"] == "ml_workflow"
    with open("flowcept_buffer.jsonl") as f:
        text = f.read()
    assert '"subtype":"dataprep"' in text.replace(" ", "")


def test_workflow_object_is_finished_and_to_dict_redacts_settings():
    from provwh import WorkflowObject
    from provwh.core.redact import REDACTED

    wf = WorkflowObject(workflow_id="wf-1", name="training")
    assert wf.workflow_is_finished() is False
    wf.status = "RUNNING"
    assert wf.workflow_is_finished() is False
    wf.status = "FINISHED"
    assert wf.workflow_is_finished() is True
    wf.status = "ERROR"
    assert wf.workflow_is_finished() is True

    wf.flowcept_settings = {
        "mq": {"host": "mq-host", "port": 6379, "password": "redis-pw"},
        "databases": {"postgres": {"url": "postgresql://alice:db-pw@127.0.0.1:5432/prov"}},
        "buffer": {"redis_url": "redis://:redis-url-pw@127.0.0.1:6379/0"},
    }
    d = wf.to_dict()
    assert d["workflow_id"] == "wf-1" and d["name"] == "training"
    assert d["flowcept_settings"]["mq"] == {"host": "mq-host", "port": 6379, "password": REDACTED}
    assert d["flowcept_settings"]["databases"]["postgres"]["url"] == (
        f"postgresql://alice:{REDACTED}@127.0.0.1:5432/prov"
    )
    assert d["flowcept_settings"]["buffer"]["redis_url"] == (
        f"redis://:{REDACTED}@127.0.0.1:6379/0"
    )
    for secret in ("redis-pw", "db-pw", "redis-url-pw"):
        assert secret not in repr(d)
    assert wf.flowcept_settings["mq"]["password"] == "redis-pw"  # the object itself is kept


def test_captured_workflow_object_is_finished():
    from provwh import WorkflowObject

    with Flowcept(workflow_name="finishing") as f:
        (running,) = [m for m in f.get_buffer() if m["type"] == "workflow"]
        assert WorkflowObject.from_dict(running).workflow_is_finished() is False
    (done,) = [m for m in Flowcept.read_buffer_file() if m["type"] == "workflow"]
    assert WorkflowObject.from_dict(done).workflow_is_finished() is True


def test_telemetry_capture_as_flowcept_uses_it():
    import os

    from provwh import TelemetryCapture

    tc = TelemetryCapture()
    telemetry = tc.capture()
    data = telemetry.to_dict()
    assert set(data) >= {"cpu", "memory", "process"}
    assert isinstance(data["cpu"]["percent_all"], (int, float))
    assert data["process"]["pid"] == os.getpid()
    info = tc.capture_machine_info()
    assert info["platform"]["system"] == os.uname()[0]
    assert info["platform"]["machine"] == os.uname()[4]
    assert set(info) >= {"cpu", "memory", "disk", "process"}
    tc.shutdown_gpu_telemetry()
    tc.shutdown_gpu_telemetry()  # twice is harmless
    assert set(tc.capture().to_dict()) >= {"cpu", "memory", "process"}
    off = TelemetryCapture(
        cpu=False, mem=False, process_info=False, disk=False, network=False, gpu=False
    )
    assert off.capture() is None
