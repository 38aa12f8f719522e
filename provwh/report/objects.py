"""Object artifacts: the models, datasets and other blobs a workflow stored (``Flowcept.db``).

Each object record is one version of an object (``object_id``, ``version``); counts, sizes and
the latest objects of each type are taken from each object's latest version in the input.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

LATEST_PER_TYPE = 5
UNKNOWN_TYPE = "unknown"


def type_label(object_type: str) -> str:
    """``ml_model`` → Models, ``dataset`` → Datasets, ``image_set`` → Image Sets."""
    key = object_type.lower().strip()
    if key in ("ml_model", "model"):
        return "Models"
    if key in ("dataset", "data_set"):
        return "Datasets"
    return object_type.replace("_", " ").title() + "s"


def timestamp(obj: dict[str, Any]) -> float | None:
    """When the object (this version) was stored: updated, else created, else any time field."""
    for key in ("updated_at", "utc_timestamp", "timestamp", "created_at"):
        value = obj.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _version(obj: dict[str, Any]) -> int | None:
    value = obj.get("version")
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _tags(obj: dict[str, Any]) -> list[str]:
    tags = obj.get("tags")
    if isinstance(tags, str):
        return [tags]
    if isinstance(tags, list | tuple):
        return [str(t) for t in tags]
    return []


@dataclass
class StoredObject:
    """One object: its latest version in the input, and how many versions the input holds."""

    object_id: str
    object_type: str
    latest: dict[str, Any]
    versions: int

    @property
    def version(self) -> int | None:
        return _version(self.latest)

    @property
    def size(self) -> int | None:
        size = self.latest.get("object_size_bytes")
        return int(size) if isinstance(size, int | float) and not isinstance(size, bool) else None

    @property
    def tags(self) -> list[str]:
        return _tags(self.latest)

    @property
    def stored_at(self) -> float | None:
        return timestamp(self.latest)


@dataclass
class ObjectSummary:
    records: int  # object records (versions) in the input
    objects: list[StoredObject]  # one per object id, in input order
    by_type: dict[str, int] = field(default_factory=dict)  # type → objects, by type name
    by_storage: dict[str, int] = field(default_factory=dict)
    latest: dict[str, list[StoredObject]] = field(default_factory=dict)  # type → newest first

    @property
    def task_linked(self) -> int:
        return sum(1 for o in self.objects if o.latest.get("task_id") is not None)

    @property
    def workflow_linked(self) -> int:
        return sum(1 for o in self.objects if o.latest.get("workflow_id") is not None)

    @property
    def max_version(self) -> int | None:
        versions = [v for v in (o.version for o in self.objects) if v is not None]
        return max(versions) if versions else None

    @property
    def sizes(self) -> list[int]:
        return [s for s in (o.size for o in self.objects) if s is not None]


def summarize(records: list[dict[str, Any]]) -> ObjectSummary:
    """Objects by id (latest version wins: highest version, then latest time, then last given)."""
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for index, rec in enumerate(records):
        groups[str(rec.get("object_id"))].append((index, rec))
    objects = []
    for object_id, versions in groups.items():

        def rank(pair: tuple[int, dict[str, Any]]) -> tuple:
            index, rec = pair
            version, stored = _version(rec), timestamp(rec)
            return (version is not None, version or 0, stored is not None, stored or 0.0, index)

        latest = max(versions, key=rank)[1]
        kind = latest.get("object_type") or latest.get("type")
        kind = str(kind) if kind not in (None, "", "object") else UNKNOWN_TYPE
        objects.append(StoredObject(object_id, kind, latest, len(versions)))

    by_type = Counter(o.object_type for o in objects)
    by_storage = Counter(str(o.latest.get("storage_type") or "unknown") for o in objects)
    latest: dict[str, list[StoredObject]] = {}
    order = {o.object_id: i for i, o in enumerate(objects)}
    for kind in sorted(by_type):
        of_kind = [o for o in objects if o.object_type == kind]
        of_kind.sort(
            key=lambda o: (
                o.stored_at is not None,
                o.stored_at or 0.0,
                o.version is not None,
                o.version or 0,
                order[o.object_id],
            ),
            reverse=True,
        )
        latest[kind] = of_kind
    return ObjectSummary(
        len(records),
        objects,
        dict(sorted(by_type.items())),
        dict(sorted(by_storage.items())),
        latest,
    )
