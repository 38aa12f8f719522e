"""The records of lightweight task calls and loop iterations, built when the buffer flushes.

A lightweight call queues ``(builder, workflow_id, campaign_id, parent_task_id, started_at,
ended_at, args, kwargs, result, error)``; the call pays for a tuple. At the flush the builder
turns a whole batch of its entries into JSON lines in one loop (``lines``): the task id, the
bound arguments and the output mapping are done there, with no function frame per record for
the common case (positional arguments, no ``output_names``), and only the fields that differ
from one call to the next go through a dict and orjson: the type, ids, activity, static fields
and host fields are written once per batch as bytes. Task ids are drawn at the flush too:
nothing refers to a lightweight task's id while it runs (it is nobody's parent). ``many`` builds
the same records as dicts, for readers that need them. A lightweight loop queues its iterations
when it ends, ``(builder, task_id, item, i, started_at, ended_at, status, generated)`` each, for
a ``LoopBuilder`` to write the same way.
"""

from __future__ import annotations

from typing import Any

import orjson

from provwh.core.ids import ID_STATE
from provwh.core.serialize import FAST_LINE_OPTS, Lines, dumps, fast_default, mark_lines

NO_VALUE = object()  # an iteration that end_iter() was not called for: no ``generated``


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
        bind, map_output, plain_output = self.bind, self.map_output, self.plain_output
        exact, ns = self.exact, self.ns
        n_exact = len(exact) if exact is not None else -1
        prefix, counter = ID_STATE
        fixed = {"activity_id": self.activity_id, **self.extra, **(host or {})}
        fast, default, opts = orjson.dumps, fast_default, FAST_LINE_OPTS
        parts: list[bytes] = []
        append = parts.append
        head, last = b"", None  # the line's start for the entries' (workflow, campaign)
        for _, wf, camp, parent, t0, t1, args, kwargs, result, error in entries:
            if (wf, camp) != last:
                last = (wf, camp)
                ids = {"type": "task", "workflow_id": wf, "campaign_id": camp, **fixed}
                head = dumps(ids)[:-1] + b","  # ``type`` first: readers look at it
            if kwargs or len(args) != n_exact or ns in map(type, args):
                used = bind(args, kwargs)
            else:
                used = dict(zip(exact, args))  # noqa: B905 (lengths checked above)
            rec = {
                "task_id": prefix + str(next(counter)),
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
            try:
                line = fast(rec, default=default, option=opts)
            except (TypeError, orjson.JSONEncodeError):
                line = dumps(rec) + b"\n"
            append(head)
            append(line[1:])
        return _finish(self, entries, host, parts)

    def many(self, entries: list[tuple], host: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The records of ``entries`` (all this builder's), ``host``'s fields added to each."""
        bind, map_output, plain_output = self.bind, self.map_output, self.plain_output
        activity_id, extra, exact, ns = self.activity_id, self.extra, self.exact, self.ns
        n_exact = len(exact) if exact is not None else -1
        prefix, counter = ID_STATE
        out = []
        append = out.append
        for _, wf, camp, parent, t0, t1, args, kwargs, result, error in entries:
            if kwargs or len(args) != n_exact or ns in map(type, args):
                used = bind(args, kwargs)
            else:
                used = dict(zip(exact, args))  # noqa: B905 (lengths checked above)
            rec = {
                "type": "task",
                "task_id": prefix + str(next(counter)),
                "workflow_id": wf,
                "campaign_id": camp,
                "activity_id": activity_id,
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
            if extra:
                rec.update(extra)
            if host:
                rec.update(host)
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
        item_name, no_value = self.item_name, NO_VALUE
        fast, default, opts = orjson.dumps, fast_default, FAST_LINE_OPTS
        head = dumps({"type": "task", **self.fixed, **(host or {})})[:-1] + b","
        parts: list[bytes] = []
        append = parts.append
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
            try:
                line = fast(rec, default=default, option=opts)
            except (TypeError, orjson.JSONEncodeError):
                line = dumps(rec) + b"\n"
            append(head)
            append(line[1:])
        return _finish(self, entries, host, parts)

    def many(self, entries: list[tuple], host: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The records of ``entries`` (all this builder's), ``host``'s fields added to each."""
        out = []
        for _, tid, item, i, t0, t1, status, generated in entries:
            rec = {"type": "task", "task_id": tid, **self.fixed}
            rec["used"] = {self.item_name: item, "i": i}
            rec.update(started_at=t0, ended_at=t1, status=status)
            if generated is not NO_VALUE:
                rec["generated"] = generated
            if host:
                rec.update(host)
            out.append(rec)
        return out


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
