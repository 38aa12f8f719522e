"""What the observing adapters share (MLflow, TensorBoard): a thread that reads an external
store every few seconds and turns what is new into task records, and a last read at ``stop()``
so that what was written before ``stop()`` is recorded whatever the interval."""

from __future__ import annotations

import fnmatch
import logging
import threading
from typing import Any

log = logging.getLogger("provwh")


def matches(name: str, patterns: list[str]) -> bool:
    """Whether ``name`` is one of ``patterns`` (names or fnmatch patterns: ``*``, ``val_*``)."""
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


class PollingAdapter:
    """Built by the controller for ``interceptors=[kind]``: ``poll()`` every ``interval``
    seconds on a daemon thread from ``start()``, and once more in ``stop()``."""

    kind = ""

    def __init__(self, ctl: Any, interval: float) -> None:
        self.ctl = ctl
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()
        self._failed_polls = 0

    # -- what a subclass provides ---------------------------------------------------------------
    def begin(self) -> None:
        """At start, before the first poll: note what is already there."""

    def poll(self, final: bool = False) -> None:
        """Read the store; ``emit`` a record for each new run."""
        raise NotImplementedError

    # -- the thread ---------------------------------------------------------------------------
    def emit(self, rec: dict[str, Any]) -> None:
        self.ctl.batch_buffer.put(rec)

    def start(self) -> None:
        self.begin()
        self.ctl.update_workflow(adapter_id=self.kind)
        self._thread = threading.Thread(target=self._run, name=f"provwh-{self.kind}", daemon=True)
        self._thread.start()

    def _poll_logged(self, final: bool = False) -> None:
        with self._poll_lock:
            try:
                self.poll(final)
                self._failed_polls = 0
            except Exception as exc:  # a store being written (locked, half created): next time
                self._failed_polls += 1
                level = logging.WARNING if final or self._failed_polls == 10 else logging.DEBUG
                log.log(level, "provwh: the %s adapter could not read its store: %r",
                        self.kind, exc)  # fmt: skip

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll_logged()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._poll_logged(final=True)
