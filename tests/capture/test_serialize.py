import argparse
import dataclasses
import enum
from pathlib import Path

import numpy as np
import orjson
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
