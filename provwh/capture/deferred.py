"""The records of lightweight task calls and loop iterations, built when the buffer flushes.

A lightweight call, and a ``@flowcept_task`` call without telemetry, queues ``(builder,
workflow_id, campaign_id, parent_task_id, started_at, ended_at, args, kwargs, result, error,
task_id)``; the call pays for a tuple. At the flush the builder
turns a whole batch of its entries into JSON lines in one loop (``lines``): the task id, the
bound arguments and the output mapping are done there, with no function frame per record for
the common case (positional arguments, no ``output_names``), and only the fields that differ
from one call to the next go through a dict and orjson: the type, ids, activity, static fields
and host fields are written once per batch as bytes. A lightweight task's id is drawn at the
flush too (``task_id`` None): nothing refers to it while it runs (it is nobody's parent); a
``@flowcept_task`` call draws its own, which the tasks started inside it name as parent.
``many`` builds the same records as dicts, for readers that need them. A lightweight loop
queues its iterations when it ends, ``(builder, task_id, item, i, started_at, ended_at,
status, generated)`` each, for a ``LoopBuilder`` to write the same way.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import orjson

from provwh.core.ids import ID_STATE
from provwh.core.serialize import FAST_LINE_OPTS, Lines, dumps, fast_default, mark_lines

NO_VALUE = object()  # an iteration that end_iter() was not called for: no ``generated``
_WF_CAMP = itemgetter(1, 2)  # a task entry's (workflow_id, campaign_id)


class TaskBuilder:
    """Builds the records of one lightweight function's calls (see the module docstring)."""

    __slots__ = ("activity_id", "bind", "map_output", "plain_output", "extra", "exact", "ns")

    def __init__(
        self,
        activity_id: str,
        bind: Any,
        map_output: Any,
        plain_output: bool,
        extra: dict[str, Any],
    ) -> None:
        self.activity_id = activity_id
        self.bind = bind
        self.map_output = map_output
        # True: no output_names, so the mapping is inlined (None: none, a dict as it is,
        # anything else {"arg_0": result}: args.make_output_mapper's rules)
        self.plain_output = plain_output
        self.extra = extra
        self.exact = getattr(bind, "exact_names", None)
        self.ns = getattr(bind, "namespace_type", None)

    def __call__(self, entry: tuple) -> dict[str, Any]:
        return self.many([entry], None)[0]

    def lines(self, entries: list[tuple], host: dict[str, Any] | None) -> Lines:
        """The JSON lines of ``entries`` (all this builder's), ``host``'s fields in each."""
        fixed = {"activity_id": self.activity_id, **self.extra, **(host or {})}
        fields = self._fields(entries)
        pairs = list(map(_WF_CAMP, entries))
        heads = {}  # the line's start for each (workflow, campaign): ``type`` first
        for wf, camp in set(pairs):
            ids = {"type": "task", "workflow_id": wf, "campaign_id": camp, **fixed}
            heads[wf, camp] = dumps(ids)[:-1] + b","
        parts: list[bytes] = []
        if len(heads) == 1:
            _serialize(heads.popitem()[1], fields, parts)
        else:
            for pair, rec in zip(pairs, fields, strict=True):
                _serialize(heads[pair], [rec], parts)
        return _finish(self, entries, host, parts)

    def many(self, entries: list[tuple], host: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The records of ``entries`` (all this builder's), ``host``'s fields added to each."""
        fixed = {**self.extra, **(host or {})}
        return [
            {"type": "task", "workflow_id": e[1], "campaign_id": e[2],
             "activity_id": self.activity_id, **rec, **fixed}
            for e, rec in zip(entries, self._fields(entries), strict=True)
        ]  # fmt: skip

    def _fields(self, entries: list[tuple]) -> list[dict[str, Any]]:
        """The fields that differ from call to call, for each entry (ids drawn here)."""
        bind, map_output, plain_output = self.bind, self.map_output, self.plain_output
        exact, ns = self.exact, self.ns
        n_exact = len(exact) if exact is not None else -1
        prefix, counter = ID_STATE
        out = []
        append = out.append
        for _, _wf, _camp, parent, t0, t1, args, kwargs, result, error, tid in entries:
            if kwargs or len(args) != n_exact or ns in map(type, args):
                used = bind(args, kwargs)
            else:
                used = dict(zip(exact, args))  # noqa: B905 (lengths checked above)
            rec = {
                "task_id": tid or prefix + str(next(counter)),
                "used": used,
                "started_at": t0,
                "ended_at": t1,
            }
            if parent is not None:
                rec["parent_task_id"] = parent
            if error is None:
                rec["status"] = "FINISHED"
                if not plain_output:
                    generated = map_output(result)
                    if generated is not None:
                        rec["generated"] = generated
                elif result is not None:
                    rec["generated"] = result if isinstance(result, dict) else {"arg_0": result}
            else:
                rec["status"] = "ERROR"
                rec["stderr"] = error
            append(rec)
        return out


class LoopBuilder:
    """Builds the records of one lightweight loop's iterations (see the module docstring)."""

    __slots__ = ("fixed", "item_name")

    def __init__(self, fixed: dict[str, Any], item_name: str) -> None:
        self.fixed = fixed  # workflow, campaign, activity and links: the same for every iteration
        self.item_name = item_name

    def __call__(self, entry: tuple) -> dict[str, Any]:
        return self.many([entry], None)[0]

    def lines(self, entries: list[tuple], host: dict[str, Any] | None) -> Lines:
        """The JSON lines of ``entries`` (all this builder's), ``host``'s fields in each."""
        head = dumps({"type": "task", **self.fixed, **(host or {})})[:-1] + b","
        parts: list[bytes] = []
        _serialize(head, self._fields(entries), parts)
        return _finish(self, entries, host, parts)

    def many(self, entries: list[tuple], host: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The records of ``entries`` (all this builder's), ``host``'s fields added to each."""
        fixed = {"type": "task", **self.fixed}
        host = host or {}
        return [{**fixed, **rec, **host} for rec in self._fields(entries)]

    def _fields(self, entries: list[tuple]) -> list[dict[str, Any]]:
        """The fields that differ from iteration to iteration, for each entry."""
        item_name, no_value = self.item_name, NO_VALUE
        out = []
        append = out.append
        for _, tid, item, i, t0, t1, status, generated in entries:
            rec = {
                "task_id": tid,
                "used": {item_name: item, "i": i},
                "started_at": t0,
                "ended_at": t1,
                "status": status,
            }
            if generated is not no_value:
                rec["generated"] = generated
            append(rec)
        return out


def _serialize(head: bytes, fields: list[dict[str, Any]], parts: list[bytes]) -> None:
    """Append each record's line to ``parts``: ``head`` (its fixed fields), then its own."""
    fast, default, opts = orjson.dumps, fast_default, FAST_LINE_OPTS
    append = parts.append
    for rec in fields:
        try:
            line = fast(rec, default=default, option=opts)
        except (TypeError, orjson.JSONEncodeError):
            line = dumps(rec) + b"\n"
        append(head)
        append(line[1:])


def _finish(builder: Any, entries: list[tuple], host: Any, parts: list[bytes]) -> Lines:
    """The batch of ``parts`` (a head and a line's rest per entry), non-finite floats marked."""
    data = mark_lines(_Built(builder, entries, host, parts), b"".join(parts))
    return Lines(data, len(entries), lambda: builder.many(entries, host))


class _Built:
    """The records of ``lines``' entries as dicts, built one by one when asked for (the rare
    line holding ``null`` is checked for non-finite floats on its record)."""

    def __init__(self, builder: Any, entries: list, host: Any, parts: list) -> None:
        self.builder, self.entries, self.host, self.parts = builder, entries, host, parts

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.builder.many([self.entries[i]], self.host)[0]
        rec["task_id"] = orjson.loads(b"{" + self.parts[2 * i + 1])["task_id"]  # as written
        return rec
