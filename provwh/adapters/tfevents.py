"""A small reader of TensorBoard event files (TFRecord framing, protobuf ``Event`` messages).

It decodes only what the TensorBoard adapter keeps, straight from the protobuf wire format:
``Event.wall_time`` / ``step``, each summary value's ``tag``, ``simple_value`` (scalars written
by ``tensorboardX`` / ``torch.utils.tensorboard``), one-element numeric ``tensor`` (scalars
written by TensorFlow 2), and the hparams plugin's session start / end (hyperparameters and the
run's end status). Images, histograms, audio, text and graphs are skipped.

Why not ``tensorboard``'s reader (or ``tbparse``, which uses it with pandas): installing it pulls
grpcio, werkzeug, markdown, pillow and a server binary to read two levels of protobuf from a
framed file, whose format has not changed since TensorFlow 1.0. This module needs the standard
library only.

A file is read incrementally (``EventFileReader.read_new``): records appended since the last call,
stopping before a record still being written.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventFileReader", "Scalar", "Events", "decode_event", "masked_crc32c"]

_CRC_TABLE: list[int] = []


def _crc_table() -> list[int]:
    if not _CRC_TABLE:
        for i in range(256):
            crc = i
            for _ in range(8):
                crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
            _CRC_TABLE.append(crc)
    return _CRC_TABLE


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C, rotated and offset."""
    table, crc = _crc_table(), 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# -- protobuf wire format ------------------------------------------------------------------------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): an int for varint, bytes for the other types."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("truncated message")
        yield number, wire, value


def _double(raw: bytes) -> float:
    return struct.unpack("<d", raw)[0]


def _float32(raw: bytes) -> float:
    """A float32 as the shortest decimal that is the same float32 (0.9, not 0.899999976...)."""
    value = struct.unpack("<f", raw)[0]
    if not math.isfinite(value):
        return value
    for digits in range(1, 10):
        short = float(f"{value:.{digits}g}")
        if struct.pack("<f", short) == raw:
            return short
    return value


# TensorProto dtypes with one-element numeric values: dtype -> (struct code, size, packed field)
_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_INT64, _DT_BOOL = 1, 2, 3, 9, 10
_DTYPES = {
    _DT_FLOAT: ("<f", 4, 5),
    _DT_DOUBLE: ("<d", 8, 6),
    _DT_INT32: ("<i", 4, 7),
    _DT_INT64: ("<q", 8, 10),
    _DT_BOOL: ("<?", 1, 11),
}


def _tensor_scalar(buf: bytes) -> float | int | bool | None:
    """The value of a one-element numeric TensorProto, else None."""
    dtype, content, packed, elements = 0, None, {}, 1
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 2 and wire == 2:  # TensorShapeProto: dims (field 1), each with a size
            for dim_no, _w, dim in _fields(value):
                if dim_no == 1:
                    for size_no, _w2, size in _fields(dim):
                        if size_no == 1:
                            elements *= size
        elif number == 4 and wire == 2:
            content = value
        elif wire == 2:
            packed[number] = value
        elif wire in (0, 1, 5):  # one unpacked value
            packed.setdefault(number, value)
    if dtype not in _DTYPES or elements != 1:
        return None
    code, size, field_no = _DTYPES[dtype]
    if content is not None and len(content) == size:
        raw = content
    elif field_no in packed:
        raw = packed[field_no]
        if isinstance(raw, int):  # a varint (int32 / int64 / bool)
            return bool(raw) if dtype == _DT_BOOL else _signed(raw)
        if dtype in (_DT_INT32, _DT_INT64, _DT_BOOL):  # packed varints
            (number_value, _end) = _varint(raw, 0)
            return bool(number_value) if dtype == _DT_BOOL else _signed(number_value)
        if len(raw) != size:
            return None
    else:
        return None
    if dtype == _DT_FLOAT:
        return _float32(raw)
    return struct.unpack(code, raw)[0]


def _signed(value: int) -> int:
    """A varint as a signed integer (negative int32 / int64 are sign-extended to 64 bits)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _pb_value(buf: bytes) -> Any:
    """A google.protobuf.Value as Python (null, number, text, bool; struct / list as text)."""
    for number, wire, value in _fields(buf):
        if number == 1:
            return None
        if number == 2 and wire == 1:
            return _double(value)  # a number, as stored: 32 is 32.0
        if number == 3:
            return value.decode("utf-8", "replace")
        if number == 4:
            return bool(value)
    return None


def _hparams(content: bytes, out: Events) -> None:
    """HParamsPluginData: session_start_info (3) has the hyperparameters, session_end_info (4)
    the run's status (1 success, 2 failure) and end time."""
    for number, wire, value in _fields(content):
        if number == 3 and wire == 2:
            for ssi_no, _w, ssi in _fields(value):
                if ssi_no == 1:  # map<string, Value> entry
                    key, val = "", None
                    for entry_no, _w2, entry in _fields(ssi):
                        if entry_no == 1:
                            key = entry.decode("utf-8", "replace")
                        elif entry_no == 2:
                            val = _pb_value(entry)
                    out.hparams[key] = val
        elif number == 4 and wire == 2:
            for sei_no, sei_wire, sei in _fields(value):
                if sei_no == 1 and sei_wire == 0:
                    out.session_status = sei


@dataclass
class Scalar:
    tag: str
    step: int
    wall_time: float
    value: float | int | bool
    kind: str  # "scalars" (simple_value) or "tensors" (a one-element tensor)


@dataclass
class Events:
    """What one or more event records hold, in the order read."""

    scalars: list[Scalar] = field(default_factory=list)
    hparams: dict[str, Any] = field(default_factory=dict)
    session_status: int | None = None
    first_wall_time: float | None = None
    last_wall_time: float | None = None


def decode_event(buf: bytes, out: Events) -> None:
    """Add what one serialized ``Event`` holds to ``out``."""
    wall_time, step, summary = 0.0, 0, None
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 1:
            wall_time = _double(value)
        elif number == 2 and wire == 0:
            step = _signed(value)
        elif number == 5 and wire == 2:
            summary = value
    if wall_time:
        if out.first_wall_time is None or wall_time < out.first_wall_time:
            out.first_wall_time = wall_time
        if out.last_wall_time is None or wall_time > out.last_wall_time:
            out.last_wall_time = wall_time
    if summary is None:
        return
    for number, wire, value in _fields(summary):
        if number != 1 or wire != 2:
            continue
        tag, simple, tensor, plugin, content = "", None, None, "", b""
        for v_no, v_wire, v in _fields(value):
            if v_no == 1:
                tag = v.decode("utf-8", "replace")
            elif v_no == 2 and v_wire == 5:
                simple = v
            elif v_no == 8:
                tensor = v
            elif v_no == 9:  # SummaryMetadata.plugin_data (1): plugin_name (1), content (2)
                for m_no, _w, m in _fields(v):
                    if m_no == 1:
                        for p_no, _w2, p in _fields(m):
                            if p_no == 1:
                                plugin = p.decode("utf-8", "replace")
                            elif p_no == 2:
                                content = p
        if plugin == "hparams":
            _hparams(content, out)
        elif simple is not None:
            out.scalars.append(Scalar(tag, step, wall_time, _float32(simple), "scalars"))
        elif tensor is not None and plugin in ("", "scalars"):
            scalar = _tensor_scalar(tensor)
            if scalar is not None:
                out.scalars.append(Scalar(tag, step, wall_time, scalar, "tensors"))


_HEADER = 12  # uint64 length, uint32 masked CRC of the length


class EventFileReader:
    """Reads one event file incrementally: ``read_new(out)`` decodes the records appended since
    the last call. A record not yet whole is left for the next call; a damaged one (its length's
    checksum is wrong) ends the reading of the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.damaged = False

    def read_new(self, out: Events) -> int:
        """Decode the new whole records into ``out``; the number of records read."""
        if self.damaged:
            return 0
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return 0
        pos, count = 0, 0
        while len(data) - pos >= _HEADER:
            header = data[pos : pos + 8]
            (length,) = struct.unpack("<Q", header)
            (length_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
            if masked_crc32c(header) != length_crc:
                self.damaged = True
                break
            end = pos + _HEADER + length + 4
            if end > len(data):
                break  # still being written
            try:
                decode_event(data[pos + _HEADER : pos + _HEADER + length], out)
            except (ValueError, IndexError, struct.error, UnicodeError):
                pass  # an event this reader cannot decode: skipped
            pos, count = end, count + 1
        self.offset += pos
        return count
