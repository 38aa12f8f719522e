import argparse
import dataclasses
import enum
from pathlib import Path

import numpy as np
import orjson
import pytest
from capture_helpers import run_captured, tasks_of

from provwh import flowcept_task
from provwh.core import serialize


class WithFlowceptDict:
    def to_flowcept_dict(self):
        return {"kind": "flowcept", "inner": WithToDict()}


class WithToDict:
    def to_dict(self):
        return {"kind": "to_dict"}


class Registered:
    def __init__(self):
        self.a = 1
        self.b = [1, 2]


class Opaque:
    pass


class BrokenToDict:
    def to_dict(self):
        raise RuntimeError("no")


@dataclasses.dataclass
class Point:
    x: int
    y: Opaque


class Color(enum.Enum):
    RED = "red"


def roundtrip(value):
    return orjson.loads(serialize.dumps(value))


def test_documented_rules():
    serialize.register_dict_class(Registered)
    opaque = Opaque()
    out = roundtrip(
        {
            "fd": WithFlowceptDict(),
            "td": WithToDict(),
            "reg": Registered(),
            "ns": argparse.Namespace(lr=0.1),
            "opaque": opaque,
            "broken": (broken := BrokenToDict()),
        }
    )
    assert out["fd"] == {"kind": "flowcept", "inner": {"kind": "to_dict"}}
    assert out["td"] == {"kind": "to_dict"}
    assert out["reg"] == {"a": 1, "b": [1, 2]}
    assert out["ns"] == {"lr": 0.1}
    assert out["opaque"] == f"Opaque_instance_id_{id(opaque)}"
    assert out["broken"] == f"BrokenToDict_instance_id_{id(broken)}"


def test_common_python_and_numpy_values():
    p = Point(1, Opaque())
    out = roundtrip(
        {
            "set": {3},
            "path": Path("/tmp/x"),
            "enum": Color.RED,
            "dc": p,
            "np_scalar": np.float32(1.5),
            "np_int": np.int64(7),
            "small": np.arange(3),
            "big_int": 2**70,
            "keys": {1: "a", None: "b"},
        }
    )
    assert out["set"] == [3]
    assert out["path"] == "/tmp/x"
    assert out["enum"] == "red"
    assert out["dc"] == {"x": 1, "y": f"Opaque_instance_id_{id(p.y)}"}
    assert out["np_scalar"] == 1.5 and out["np_int"] == 7
    assert out["small"] == [0, 1, 2]
    assert out["big_int"] == str(2**70)
    assert out["keys"] == {"1": "a", "null": "b"}
    big = np.zeros(1000)
    assert roundtrip({"big": big})["big"] == f"ndarray_instance_id_{id(big)}"


def test_cycles_do_not_fail():
    a = []
    a.append(a)
    out = roundtrip({"cycle": a})
    assert isinstance(out["cycle"], list)


def test_bytes_round_trip_anywhere():
    rec = {"data": b"\x00\xffabc", "used": {"blob": bytearray(b"xy"), "list": [b"z"]}}
    line = serialize.dumps(rec)
    assert b'"$binary"' in line
    back = serialize.loads_line(line)
    assert back == {"data": b"\x00\xffabc", "used": {"blob": b"xy", "list": [b"z"]}}


def test_replace_off_stores_repr(settings_file):
    settings_file("project:\n  replace_non_json_serializable: false\n")

    class Thing:
        def __repr__(self):
            return "Thing(42)"

        def to_dict(self):
            return {"not": "used"}

    @flowcept_task
    def f(t):
        return None

    _, msgs = run_captured(lambda: f(Thing()))
    assert tasks_of(msgs)[0]["used"] == {"t": "Thing(42)"}
    serialize.configure(True)


def test_non_serializable_argument_in_a_task():
    opaque = Opaque()

    @flowcept_task
    def f(obj, n):
        return obj

    _, msgs = run_captured(lambda: f(opaque, 1))
    (task,) = tasks_of(msgs)
    assert task["used"] == {"obj": f"Opaque_instance_id_{id(opaque)}", "n": 1}
    assert task["generated"] == {"arg_0": f"Opaque_instance_id_{id(opaque)}"}


NAN, INF = float("nan"), float("inf")


def _same(a, b):
    """Equal, NaN equal to NaN (and a NaN never equal to None)."""
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@dataclasses.dataclass
class Metrics:
    loss: float


class ToDictNan:
    def to_dict(self):
        return {"score": -INF}


def test_non_finite_floats_are_kept_as_markers():
    rec = {
        "type": "task",
        "used": {"lr": NAN, "none": None, "grid": (1.0, INF), "deep": {"x": [[-INF]]}},
        "generated": {"np": np.float32("nan"), "np64": np.float64("-inf"), "arr": np.array([NAN])},
        "custom": {"dc": Metrics(NAN), "obj": ToDictNan(), "fine": 1.5},
    }
    line = serialize.dumps(rec)
    assert line == (
        b'{"type":"task","used":{"lr":{"$float":"NaN"},"none":null,"grid":[1.0,'
        b'{"$float":"Infinity"}],"deep":{"x":[[{"$float":"-Infinity"}]]}},"generated":{"np":'
        b'{"$float":"NaN"},"np64":{"$float":"-Infinity"},"arr":[{"$float":"NaN"}]},"custom":'
        b'{"dc":{"loss":{"$float":"NaN"}},"obj":{"score":{"$float":"-Infinity"}},"fine":1.5}}'
    )
    assert serialize.dumps_lines([rec, {"used": {"x": None}}]) == (
        line + b'\n{"used":{"x":null}}\n'
    )
    back = serialize.loads_line(line)
    assert _same(
        back,
        {
            "type": "task",
            "used": {"lr": NAN, "none": None, "grid": [1.0, INF], "deep": {"x": [[-INF]]}},
            "generated": {"np": NAN, "np64": -INF, "arr": [NAN]},
            "custom": {"dc": {"loss": NAN}, "obj": {"score": -INF}, "fine": 1.5},
        },
    )
    assert rec["used"]["lr"] is NAN  # the record itself is left as it was


def test_records_without_non_finite_floats_are_written_as_before():
    recs = [
        {"type": "task", "used": {"x": 1, "opt": None}, "generated": {"y": 2.5}},
        {"type": "task", "used": {"path": "/dev/null"}, "note": None, "xs": [None, 1.0]},
        {"a": 1},
    ]
    expected = b"".join(orjson.dumps(r) + b"\n" for r in recs)
    assert serialize.dumps_lines(recs) == expected
    assert serialize.dumps_lines(iter(recs)) == expected
    assert [serialize.dumps(r) for r in recs] == [orjson.dumps(r) for r in recs]


def test_lines_with_json_module_literals_load_as_floats():
    """Python's json module (and Flowcept through it) writes NaN / Infinity literals."""
    import json

    rec = {"type": "task", "task_id": "t1", "generated": {"loss": NAN, "hi": INF, "lo": -INF}}
    assert _same(serialize.loads_line(json.dumps(rec).encode()), rec)
    with pytest.raises(ValueError):
        serialize.loads_line(b'{"a": nan}')  # not a literal of either
    with pytest.raises(ValueError):
        serialize.loads_line(b'{"a": NaN, "b": "\\ud800"}')  # invalid for orjson otherwise


def test_a_task_returning_nan_and_inf_reads_back_as_floats():
    @flowcept_task
    def diverged(lr):
        return NAN, INF

    _, msgs = run_captured(lambda: diverged(NAN))
    (task,) = tasks_of(msgs)
    assert _same(task["used"], {"lr": NAN})
    assert _same(task["generated"], {"arg_0": [NAN, INF]})  # a tuple is one value
    text = open("flowcept_buffer.jsonl", "rb").read()
    assert b'"used":{"lr":{"$float":"NaN"}}' in text
    assert b'"generated":{"arg_0":[{"$float":"NaN"},{"$float":"Infinity"}]}' in text
