"""Batches that hold deferred entries (lightweight tasks, loop iterations) written by their
builders a batch at a time, beside ordinary records: order, completeness, non-finite floats."""

import math

import orjson
from capture_helpers import tasks_of, workflows_of

from provwh import (
    Flowcept,
    FlowceptLightweightLoop,
    FlowceptLoop,
    flowcept_task,
    lightweight_flowcept_task,
)
from provwh.transport import batches
from provwh.transport.spool import _raw_block_of


@flowcept_task
def full(x):
    return x * 2


@lightweight_flowcept_task
def light(x, y=None):
    return x / 2 if x != 3 else float("nan")


@lightweight_flowcept_task(output_names=["a", "b"])
def pair(x):
    return x, -x


def test_mixed_batch_keeps_order_ids_host_and_nonfinite(settings_file, tmp_path):
    settings_file("buffer:\n  flush_size: 1000\n")
    with Flowcept(workflow_name="mixed") as ctl:
        for i in range(5):
            full(i)
            light(i)
            if i == 2:
                ctl.update_workflow(custom_metadata={"half": None})  # a workflow line mid-batch
            pair(i)
        light(7, y=None)  # a keyword argument: bound the slow way
        loop = FlowceptLightweightLoop(range(3), loop_name="lw")
        for j in loop:
            loop.end_iter({"v": float("inf") if j == 1 else j})
        loop2 = FlowceptLoop(["p", "q"], loop_name="fl")
        for item in loop2:
            loop2.end_iter({"got": item})
    msgs = Flowcept.read_buffer_file()
    tasks = tasks_of(msgs)
    order = [(t["activity_id"], t["used"].get("x", t["used"].get("item"))) for t in tasks]
    expected = []
    for i in range(5):
        expected += [("full", i), ("light", i), ("pair", i)]
    expected += [("light", 7), ("lw_iteration", 0), ("lw_iteration", 1), ("lw_iteration", 2)]
    expected += [("fl_iteration", "p"), ("fl_iteration", "q")]
    assert order == expected
    assert len({t["task_id"] for t in tasks}) == len(tasks) == 21
    assert {t["hostname"] for t in tasks} == {tasks[0]["hostname"]} and tasks[0]["hostname"]
    assert all(t["workflow_id"] == ctl.current_workflow_id for t in tasks)
    by = {(a, x): t for (a, x), t in zip(order, tasks, strict=True)}
    assert math.isnan(by["light", 3]["generated"]["arg_0"])
    assert by["light", 2]["generated"] == {"arg_0": 1.0}
    assert by["light", 2]["used"] == {"x": 2, "y": None}
    assert by["light", 7]["used"] == {"x": 7, "y": None}
    assert by["pair", 4]["generated"] == {"a": 4, "b": -4}
    assert by["full", 4]["generated"] == {"arg_0": 8}
    assert by["lw_iteration", 1]["generated"] == {"v": math.inf}
    assert by["lw_iteration", 2]["used"] == {"item": 2, "i": 2}
    assert [by["fl_iteration", k]["generated"] for k in "pq"] == [{"got": "p"}, {"got": "q"}]
    assert {t["status"] for t in tasks} == {"FINISHED"}
    (wf,) = workflows_of(msgs)
    assert wf["custom_metadata"] == {"half": None} and wf["name"] == "mixed"
    # in the batch files, the NaN and the infinity are marked, the Nones stay null
    raw = b"".join((tmp_path / ".provwh" / "spool" / n).read_bytes() for n in ctl._writer.names)
    assert raw.count(b'{"$float":"NaN"}') == 1
    assert raw.count(b'{"$float":"Infinity"}') == 1
    spool = tmp_path / ".provwh" / "spool"
    written = sum(len(batches.read_batch(spool / n)) for n in ctl._writer.names)
    assert written == 21 + 3  # the tasks, and the workflow's three parts


def test_lightweight_error_is_written_with_its_message(settings_file):
    @lightweight_flowcept_task
    def boom(x):
        raise ValueError(f"bad {x}")

    with Flowcept():
        for i in range(2):
            try:
                boom(i)
            except ValueError:
                pass
    tasks = tasks_of(Flowcept.read_buffer_file())
    assert [(t["status"], t["used"], "bad" in t["stderr"]) for t in tasks] == [
        ("ERROR", {"x": 0}, True),
        ("ERROR", {"x": 1}, True),
    ]
    assert "generated" not in tasks[0]


def test_raw_block_cuts_out_the_lines_of_a_type(tmp_path):
    path = tmp_path / "b.jsonl"
    cases = {
        b'{"type":"workflow","a":1}\n{"type":"task","x":1}\n{"type":"workflow","b":2}\n'
        b'{"type":"task","y":2}\n': b'{"type":"task","x":1}\n{"type":"task","y":2}\n',
        b'{"type":"task","x":1}\n{"type":"workflow","b":2}\n': b'{"type":"task","x":1}\n',
        b'{"type":"workflow"}\n{"type":"workflow"}\n': b"",
        b'{"type":"task"}': b'{"type":"task"}\n',  # a last line without its newline
        b"": b"",
    }
    # a string holding what looks like a workflow line is JSON-escaped: never cut
    inner = orjson.dumps({"type": "task", "s": '\n{"type":"workflow"'}) + b"\n"
    cases[inner] = inner
    for data, expected in cases.items():
        path.write_bytes(data)
        assert _raw_block_of(path, b"workflow") == expected
    path.write_bytes(b'{"type":"workflow"}\n{"type":"task"}\n')
    assert _raw_block_of(path, None) == b'{"type":"workflow"}\n{"type":"task"}\n'
