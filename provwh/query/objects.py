"""Data objects (models, datasets, any blob) with versions, in the ``data_objects`` table.

One row per (object_id, version); the latest version is the one with the highest number.
Saving an object that exists writes version ``latest + 1``: with ``control_version`` the
previous versions stay (the history), without it the latest row is replaced (Flowcept's
"overwrite, but count the version"). Fields not given keep their previous values. The bytes
live in the row (``data``), with their sha256 and size, so equality checks never read them.
"""

from __future__ import annotations

import getpass
import pickle as pickle_module
import time
import uuid
from typing import Any

from provwh.query.backends import Backend
from provwh.query.frag import Frag, sql, stored
from provwh.query.paths import collection
from provwh.query.results import to_record
from provwh.warehouse.escape import escape_nul

OBJECTS = "objects"
_META_FIELDS = (
    "object_id",
    "version",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "prev_version",
    "task_id",
    "workflow_id",
    "object_type",
    "custom_metadata",
    "tags",
    "object_size_bytes",
    "data_sha256",
    "data_hash_algo",
)


class BlobObject:
    """A stored object version: attribute access to its fields (``data`` holds the bytes)."""

    __slots__ = ("_record",)

    def __init__(self, **fields: Any) -> None:
        object.__setattr__(self, "_record", dict(fields))

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> BlobObject:
        return cls(**doc)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._record)

    @staticmethod
    def object_id_field() -> str:
        return "object_id"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._record.get(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BlobObject) and other._record == self._record

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._record.items() if k != "data"}
        return f"BlobObject({shown})"


def _actor() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


def _payload(obj: Any, pickle: bool) -> bytes:
    if pickle:
        return pickle_module.dumps(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    raise TypeError(
        f"a data object must be bytes, got {type(obj).__name__}: pass pickle=True to store a"
        " Python object"
    )


def _columns() -> str:
    return ", ".join(f't."{c}"' for c in collection(OBJECTS).columns)


def _version_filter(object_id: Any, version: Any) -> Frag:
    if not isinstance(object_id, str) or not object_id:
        raise ValueError(f"object_id must be a non-empty string, got {object_id!r}")
    if version is None:
        return sql(
            "t.object_id = CAST({} AS TEXT) AND t.version = (SELECT max(o_.version)"
            " FROM data_objects o_ WHERE o_.object_id = t.object_id)",
            stored(object_id),
        )
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"version must be an integer or None, got {version!r}")
    return sql(
        "t.object_id = CAST({} AS TEXT) AND t.version = CAST({} AS INTEGER)",
        stored(object_id),
        version,
    )


def fetch(backend: Backend, object_id: str, version: int | None, tx: Any = None) -> dict | None:
    """The record of one version (the latest when ``version`` is None), or None."""
    q = sql(
        f"SELECT {_columns()} FROM data_objects t WHERE {{}}", _version_filter(object_id, version)
    )
    names, rows = backend.fetch(tx, q) if tx is not None else backend.query(q)
    return to_record(collection(OBJECTS), names, rows[0]) if rows else None


def save(
    backend: Backend,
    obj: Any,
    object_id: str | None = None,
    task_id: str | None = None,
    workflow_id: str | None = None,
    object_type: str | None = None,
    custom_metadata: dict | None = None,
    pickle: bool = False,
    control_version: bool = False,
    tags: list | None = None,
    keep_data: bool = False,
) -> str:
    """Store ``obj`` as the next version of ``object_id`` (a new id when None)."""
    from provwh.warehouse import ids
    from provwh.warehouse.normalize import build_rows

    if object_id is None:
        object_id = str(uuid.uuid4())
    if not isinstance(object_id, str) or not object_id:
        raise ValueError(f"object_id must be a non-empty string, got {object_id!r}")
    payload = None if keep_data else _payload(obj, pickle)
    now, actor = time.time(), _actor()
    given = {
        "task_id": task_id,
        "workflow_id": workflow_id,
        "object_type": object_type,
        "custom_metadata": custom_metadata,
        "tags": list(tags) if tags is not None else None,
    }
    with backend.write() as tx:
        tx.lock()
        latest = fetch(backend, object_id, None, tx)
        if latest is None:
            if keep_data:
                raise ValueError(f"Object not found for object_id={object_id}.")
            rec = {"object_id": object_id, "version": 0, "created_at": now, "created_by": actor}
        else:
            rec = {
                k: v
                for k, v in latest.items()
                if k not in ("object_size_bytes", "data_sha256", "data_hash_algo")
                and not (k == "data" and not keep_data)
            }
            rec["version"] = latest["version"] + 1
            rec["prev_version"] = (
                latest["version"] if control_version else latest.get("prev_version")
            )
            if not control_version:
                backend.execute(
                    tx,
                    sql(
                        "DELETE FROM data_objects WHERE object_id = CAST({} AS TEXT)"
                        " AND version = CAST({} AS INTEGER)",
                        stored(object_id),
                        latest["version"],
                    ),
                )
        rec.update({k: v for k, v in given.items() if v is not None})
        if not keep_data:
            rec["data"] = payload
            if pickle:
                rec["pickle"] = True
            else:
                rec.pop("pickle", None)
        rec["updated_at"], rec["updated_by"] = now, actor
        rec = escape_nul({k: v for k, v in rec.items() if v is not None})  # stored as loaded
        rows = build_rows(ids.OBJECT, [rec])
        tx.insert("data_objects", rows.data_objects)
    return object_id


def history(backend: Backend, object_id: str) -> list[dict[str, Any]]:
    """Metadata of every stored version, latest first (no bytes)."""
    if not isinstance(object_id, str) or not object_id:
        raise ValueError(f"object_id must be a non-empty string, got {object_id!r}")
    cols = ", ".join(f't."{c}"' for c in collection(OBJECTS).columns if c != "data")
    q = sql(
        f"SELECT {cols}, t.data IS NOT NULL FROM data_objects t"
        " WHERE t.object_id = CAST({} AS TEXT) ORDER BY t.version DESC",
        stored(object_id),
    )
    names, rows = backend.query(q)
    out = []
    for row in rows:
        rec = to_record(collection(OBJECTS), names[:-1], row[:-1])
        meta = {k: rec.get(k) for k in _META_FIELDS}
        meta["storage_type"] = "in_object" if row[-1] else None
        meta["pickle"] = bool(rec.get("pickle", False))
        out.append(meta)
    return out


def of_workflows(backend: Backend, workflow_ids: list[str]) -> list[dict[str, Any]]:
    """Metadata of every stored version of the objects of these workflows (no bytes), with
    ``"type": "object"`` and ``storage_type``: what a report reads. By object id, then version."""
    ids = [w for w in dict.fromkeys(workflow_ids) if isinstance(w, str) and w]
    if not ids:
        return []
    cols = ", ".join(f't."{c}"' for c in collection(OBJECTS).columns if c != "data")
    slots = ", ".join(["CAST({} AS TEXT)"] * len(ids))
    q = sql(
        f"SELECT {cols}, t.data IS NOT NULL FROM data_objects t"
        f" WHERE t.workflow_id IN ({slots}) ORDER BY t.object_id, t.version",
        *[stored(w) for w in ids],
    )
    names, rows = backend.query(q)
    out = []
    for row in rows:
        rec = to_record(collection(OBJECTS), names[:-1], row[:-1])
        rec = {"type": "object", **{k: v for k, v in rec.items() if v is not None}}
        rec["storage_type"] = "in_object" if row[-1] else "unknown"
        out.append(rec)
    return out


def fingerprint(backend: Backend, object_id: str, version: int | None = None) -> dict[str, Any]:
    """Hash and size of a version, without reading its bytes."""
    cols = ", ".join(
        f't."{c}"'
        for c in ("object_id", "version", "object_size_bytes", "data_sha256", "data_hash_algo")
    )
    q = sql(
        f"SELECT {cols}, t.data IS NOT NULL FROM data_objects t WHERE {{}}",
        _version_filter(object_id, version),
    )
    rows = backend.query(q)[1]
    if not rows:
        raise ValueError(_not_found(object_id, version))
    _oid, ver, size, digest, algo, has_data = rows[0]
    return {
        "object_id": object_id,  # the id looked up (the row holds it as stored)
        "version": int(ver),
        "object_size_bytes": size,
        "data_sha256": digest,
        "data_hash_algo": algo,
        "storage_type": "in_object" if has_data else None,
    }


def load_torch_model(backend: Backend, model: Any, object_id: str) -> dict[str, Any]:
    """Load the latest version of a stored ``state_dict`` into ``model``; returns its record.

    As Flowcept: ``torch.load(..., weights_only=True)``, and ``model._flowcept_model_object``
    gets the record without its bytes.
    """
    import io

    import torch

    rec = fetch(backend, object_id, None)
    if rec is None or rec.get("data") is None:
        raise ValueError(_not_found(object_id, None))
    state = torch.load(io.BytesIO(rec["data"]), weights_only=True)
    model.load_state_dict(state)
    model._flowcept_model_object = {k: v for k, v in rec.items() if k != "data"}
    return rec


def _not_found(object_id: str, version: int | None) -> str:
    if version is None:
        return f"Object not found for object_id={object_id}."
    return f"Object not found for object_id={object_id}, version={version}."
