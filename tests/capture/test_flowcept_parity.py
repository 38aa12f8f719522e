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
