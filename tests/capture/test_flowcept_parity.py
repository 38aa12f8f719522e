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
