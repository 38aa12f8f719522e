"""``FlowceptLoop`` and ``FlowceptLightweightLoop``: one task per iteration, as Flowcept 1.0.3.

Iteration ``i`` is a task with ``activity_id = f"{loop_name}_iteration"``, ``used =
{item_name: item, "i": i}``, what ``end_iter`` was given as ``generated``, and the loop's id
(``whole_loop_task_id``) as ``group_id``: the iterations of one loop run share it, so the
loop's iteration count and duration (first ``started_at`` to last ``ended_at``) are one
``GROUP BY group_id`` away. ``parent_task_id`` is the loop's ``parent_task_id`` argument, else
the task running around the loop (none at top level). provwh adds ``subtype = "iteration"``.

Flowcept 1.0.3 publishes no record for the loop itself, and neither does provwh by default:
code counting a loop's records finds one per iteration. ``whole_loop=True`` (a provwh option)
also publishes the loop as a task (``activity_id = loop_name``, ``subtype = "whole_loop"``,
``used = {"items_length": n}``, ``generated = {"iterations": k}``) and makes it the
iterations' parent, for trees that want the loop as a node. It is an argument of the loop, not
a setting, so that how many records a loop gives is decided where the loop is written, never
by a settings file that code reading the records cannot see.

``FlowceptLoop`` publishes each iteration when the next one starts (memory constant);
``FlowceptLightweightLoop`` keeps only the items and times and publishes all iterations when
the loop ends. A loop left early (``break``) is closed by its controller's ``stop()``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sized
from time import time
from typing import Any

from provwh.capture import context
from provwh.capture.deferred import NO_VALUE, LoopBuilder
from provwh.core.ids import ID_STATE, current_task_id, current_workflow_id, new_task_id
from provwh.core.model import task_record

_open_loops: weakref.WeakSet = weakref.WeakSet()


def _resolve_items(items: Any, items_length: int, lightweight: bool) -> tuple[Iterator, int]:
    if isinstance(items, bool):
        raise TypeError("items must be an int, a sized iterable or an iterator, not bool")
    if isinstance(items, int):
        return iter(range(items)), max(items, 0)
    if isinstance(items, Sized):
        return iter(items), len(items)
    if isinstance(items, Iterator):
        if items_length:
            return items, int(items_length)
        if lightweight:
            raise ValueError(
                "FlowceptLightweightLoop needs items_length when items is an iterator "
                "without a length"
            )
        materialized = list(items)
        return iter(materialized), len(materialized)
    if hasattr(items, "__iter__"):
        return iter(items), int(items_length or 0)
    raise TypeError(
        f"items must be an int, a sized iterable or an iterator, not {type(items).__name__}"
    )


class _LoopBase:
    def __init__(
        self,
        items: Any,
        loop_name: str,
        item_name: str,
        parent_task_id: str | None,
        workflow_id: str | None,
        items_length: int,
        capture_enabled: bool,
        lightweight: bool,
        whole_loop: bool,
    ) -> None:
        self._iterator, self._max = _resolve_items(items, items_length, lightweight)
        ctl = context.active_controller()
        self._ctl = ctl if (capture_enabled and ctl is not None and ctl.capturing) else None
        self._loop_name = loop_name
        self._item_name = item_name
        self._iteration_activity = f"{loop_name}_iteration"
        self._workflow_id = (
            workflow_id or current_workflow_id.get() or (ctl.current_workflow_id if ctl else None)
        )
        self._campaign_id = ctl.campaign_id if ctl else None
        self._parent_task_id = parent_task_id or current_task_id.get()
        self.whole_loop_task_id = new_task_id()
        self._whole_loop = bool(whole_loop)
        # what every iteration record carries besides its own fields
        links: dict[str, Any] = {"subtype": "iteration", "group_id": self.whole_loop_task_id}
        parent = self.whole_loop_task_id if whole_loop else self._parent_task_id
        if parent is not None:
            links["parent_task_id"] = parent
        self._links = links
        self._i = 0
        self._gen: Iterator | None = None
        self._loop_started_at: float | None = None
        self._closed = self._ctl is None

    def __iter__(self) -> Iterator:
        if self._closed:  # not capturing, or already published: plain iteration
            return self._iterator
        if self._gen is None:
            self._gen = self._iterate()
        return self._gen

    def __next__(self) -> Any:
        return next(self.__iter__())

    def _iterate(self) -> Iterator:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._max

    def __del__(self) -> None:
        # A loop left with ``break`` and dropped is published now, not lost.
        if not getattr(self, "_closed", True):
            try:
                self._close("FINISHED")
            except Exception:
                pass

    def _loop_builder(self) -> LoopBuilder:
        """Writes this loop's deferred iterations (``capture.deferred``)."""
        fixed = {"workflow_id": self._workflow_id, "campaign_id": self._campaign_id,
                 "activity_id": self._iteration_activity, **self._links}  # fmt: skip
        return LoopBuilder(fixed, self._item_name)

    def _loop_records(self, ended_at: float, status: str) -> list[dict[str, Any]]:
        """The whole-loop record when asked for (``whole_loop=True``), else nothing."""
        return [self._loop_record(ended_at, status)] if self._whole_loop else []

    def _loop_record(self, ended_at: float, status: str) -> dict[str, Any]:
        rec = task_record(self.whole_loop_task_id, self._workflow_id, self._campaign_id,
                          self._loop_name, {"items_length": self._max})  # fmt: skip
        rec.update(subtype="whole_loop", generated={"iterations": self._i}, status=status,
                   started_at=self._loop_started_at or ended_at, ended_at=ended_at)  # fmt: skip
        if self._parent_task_id is not None:
            rec["parent_task_id"] = self._parent_task_id
        return rec


class FlowceptLoop(_LoopBase):
    """Iterate while streaming one provenance task per iteration.

    ``for x in loop`` runs a generator holding the loop's state in locals (the per-iteration
    cost is a dict and a queue append); ``next(loop)`` works too.
    """

    def __init__(
        self,
        items: Any,
        loop_name: str = "loop",
        item_name: str = "item",
        parent_task_id: str | None = None,
        workflow_id: str | None = None,
        items_length: int = 0,
        capture_enabled: bool = True,
        *,
        whole_loop: bool = False,
    ) -> None:
        super().__init__(items, loop_name, item_name, parent_task_id, workflow_id, items_length,
                         capture_enabled, lightweight=False, whole_loop=whole_loop)  # fmt: skip
        # the running iteration: a record (with telemetry), else (task_id, item, i, started_at)
        self._current: dict[str, Any] | tuple | None = None
        self._generated: Any = NO_VALUE  # end_iter()'s value for a deferred iteration
        self._builder: LoopBuilder | None = None
        if self._ctl is None:
            self.end_iter = self._no_end_iter  # type: ignore[method-assign]
        else:
            self._put = self._ctl.batch_buffer.put
            self._tel = self._ctl.telemetry
            _open_loops.add(self)

    def _iterate(self) -> Iterator:
        if self._tel is not None:
            return self._iterate_records()
        return self._iterate_deferred()

    def _iterate_deferred(self) -> Iterator:
        """Without telemetry an iteration is queued as a tuple, written by a ``LoopBuilder``."""
        put, id_state, no_value = self._put, ID_STATE, NO_VALUE
        builder = self._builder = self._loop_builder()
        i = 0
        try:
            for item in self._iterator:
                now = time()
                current = self._current
                if current is not None:
                    put((builder, *current, now, "FINISHED", self._generated))
                else:
                    self._loop_started_at = now
                self._current = (id_state[0] + str(next(id_state[1])), item, i, now)
                self._generated = no_value
                i += 1
                self._i = i
                yield item
        finally:  # exhausted, or left with break and dropped: publish what ran
            self._close("FINISHED")

    def _iterate_records(self) -> Iterator:
        put, tel, id_state = self._put, self._tel, ID_STATE
        wf, camp, act = self._workflow_id, self._campaign_id, self._iteration_activity
        links, item_name = self._links, self._item_name
        i = 0
        current = None
        try:
            for item in self._iterator:
                now = time()
                if current is not None:
                    current["ended_at"] = now
                    current["status"] = "FINISHED"
                    current["telemetry_at_end"] = tel.snapshot()
                    put(current)
                else:
                    self._loop_started_at = now
                current = self._current = task_record(
                    id_state[0] + str(next(id_state[1])), wf, camp, act, {item_name: item, "i": i}
                )
                current.update(links)
                current["started_at"] = now
                current["telemetry_at_start"] = tel.snapshot()
                i += 1
                self._i = i
                yield item
        finally:  # exhausted, or left with break and dropped: publish what ran
            self._close("FINISHED")

    def end_iter(self, generated_value: dict) -> None:
        """Attach the values produced by the current iteration (its ``generated``)."""
        current = self._current
        if type(current) is dict:
            current["generated"] = generated_value
        elif current is not None:
            self._generated = generated_value

    def _no_end_iter(self, generated_value: dict) -> None:
        return None

    def get_current_iteration_id(self) -> str | None:
        current = self._current
        if current is None:
            return None
        return current["task_id"] if type(current) is dict else current[0]

    def _close(self, status: str) -> None:
        if self._closed:
            return
        self._closed = True
        now = time()
        current = self._current
        if type(current) is tuple:
            self._put((self._builder, *current, now, status, self._generated))
        elif current is not None:
            current["ended_at"] = now
            current["status"] = status
            if self._tel is not None:
                current["telemetry_at_end"] = self._tel.snapshot()
            self._put(current)
        for rec in self._loop_records(now, status):
            self._put(rec)
        _open_loops.discard(self)


class FlowceptLightweightLoop(_LoopBase):
    """Iterate with the least per-iteration work; all iterations are published at the end."""

    def __init__(
        self,
        items: Any,
        loop_name: str = "loop",
        item_name: str = "item",
        parent_task_id: str | None = None,
        workflow_id: str | None = None,
        items_length: int = 0,
        capture_enabled: bool = True,
        *,
        whole_loop: bool = False,
    ) -> None:
        super().__init__(items, loop_name, item_name, parent_task_id, workflow_id, items_length,
                         capture_enabled, lightweight=True, whole_loop=whole_loop)  # fmt: skip
        self._items: list[Any] = []
        self._starts: list[float] = []
        self._generated: dict[int, Any] = {}
        self._ids: list[str] = []
        if self._ctl is None:
            self.end_iter = self._no_end_iter  # type: ignore[method-assign]
        else:
            _open_loops.add(self)

    def _iterate(self) -> Iterator:
        items, starts, ids = self._items, self._starts, self._ids
        add_item, add_start, add_id = items.append, starts.append, ids.append
        id_state = ID_STATE
        try:
            for item in self._iterator:
                add_item(item)
                add_start(time())
                add_id(id_state[0] + str(next(id_state[1])))
                self._i += 1
                yield item
        finally:
            self._close("FINISHED")

    def end_iter(self, generated_value: dict) -> None:
        """Attach the values produced by the current iteration (its ``generated``)."""
        if self._i:
            self._generated[self._i - 1] = generated_value

    def _no_end_iter(self, generated_value: dict) -> None:
        return None

    def get_current_iteration_id(self) -> str | None:
        return self._ids[-1] if self._ids else None

    def _close(self, status: str) -> None:
        if self._closed:
            return
        self._closed = True
        now = time()
        starts = self._starts
        if starts:
            self._loop_started_at = starts[0]
        builder = self._loop_builder()
        generated, no_value = self._generated, NO_VALUE
        ends = starts[1:]
        ends.append(now)
        entries: list[Any] = [
            (builder, tid, item, i, t0, t1, "FINISHED", generated.get(i, no_value))
            for i, (tid, item, t0, t1) in enumerate(
                zip(self._ids, self._items, starts, ends, strict=True)
            )
        ]
        if entries and status != "FINISHED":  # the iteration the loop ended in
            entries[-1] = (*entries[-1][:6], status, entries[-1][7])
        entries += self._loop_records(now, status)
        self._ctl.batch_buffer.put_many(entries)
        self._items, self._starts, self._ids, self._generated = [], [], [], {}
        _open_loops.discard(self)


def close_open_loops(ctl: Any) -> None:
    """Publish loops of ``ctl`` that were left before their end (``break``, exception)."""
    for loop in list(_open_loops):
        if loop._ctl is ctl:
            loop._close("FINISHED")
