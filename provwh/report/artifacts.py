"""Artifacts: the file paths, URLs and data objects a run used or generated."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from provwh.report.activities import activity_stats
from provwh.report.records import activity
from provwh.report.resources import dig
from provwh.report.structure import task_key

# -- artifacts -----------------------------------------------------------------------------------

_FILE_EXTENSIONS = frozenset(
    "csv tsv json jsonl ndjson parquet arrow feather avro orc txt log out err md html xml yaml "
    "yml toml ini cfg png jpg jpeg gif bmp svg tif tiff pdf h5 hdf5 nc zarr npy npz pt pth ckpt "
    "pkl pickle joblib onnx safetensors pb tflite bin dat raw fits vtk vtu mp4 avi wav mp3 "
    "tar gz tgz zip bz2 xz zst sqlite db duckdb py ipynb sh".split()
)
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://\S+$")
_ABS = re.compile(r"^(/|\./|\.\./|~/|[A-Za-z]:[\\/])")


def looks_like_path(value: Any) -> bool:
    """A string that names a file or URL: ``/x``, ``./x``, ``C:\\x``, ``s3://x``, ``a/b.csv``."""
    if not isinstance(value, str) or not (1 < len(value) <= 1024) or "\n" in value:
        return False
    s = value.strip()
    if _URL.match(s):
        return True
    if s.count(" ") > 2:
        return False
    if _ABS.match(s) and len(s) > 1 and any(c.isalnum() for c in s):
        return True
    base = re.split(r"[\\/]", s)[-1]
    stem, dot, ext = base.rpartition(".")
    return bool(dot and stem and " " not in base and ext.lower() in _FILE_EXTENSIONS)


@dataclass
class PathKey:
    """A used/generated key of one activity whose values look like file paths or URLs."""

    activity: str
    direction: str
    key: str
    values: list[str]  # distinct, sorted
    tasks: int


@dataclass
class Artifacts:
    data: list[tuple[str, str, int]]  # (activity, task key, size in bytes)
    paths: list[PathKey]


def data_size(data: Any) -> int:
    if isinstance(data, bytes | bytearray | str):
        return len(data)
    b64 = dig(data, "$binary", "base64")
    if isinstance(b64, str):
        return len(b64) * 3 // 4 - b64.count("=")
    return len(str(data))


def artifacts(tasks: list[dict[str, Any]]) -> Artifacts:
    """Tasks that carry ``data``, and keys whose values look like file paths or URLs."""
    data = [
        (activity(t), task_key(t), data_size(t["data"])) for t in tasks if t.get("data") is not None
    ]
    values: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    counts: Counter[tuple[str, str, str]] = Counter()
    for task in tasks:
        for direction in ("used", "generated"):
            fields = task.get(direction)
            if not isinstance(fields, dict):
                continue
            for key, value in fields.items():
                items = value if isinstance(value, list) else [value]
                found = [v for v in items[:100] if looks_like_path(v)]
                if found:
                    k = (activity(task), direction, str(key))
                    values[k].update(found)
                    counts[k] += 1
    order = {s.name: i for i, s in enumerate(activity_stats(tasks))}
    direction_order = {"used": 0, "generated": 1}
    keys = sorted(values, key=lambda k: (order[k[0]], direction_order[k[1]], k[2]))
    paths = [PathKey(a, d, k, sorted(values[(a, d, k)]), counts[(a, d, k)]) for a, d, k in keys]
    return Artifacts(data, paths)
