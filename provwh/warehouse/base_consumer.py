"""``BaseConsumer``: Flowcept's consumer interface over the spool folder.

Subclass it and implement ``message_handler(msg) -> bool``; ``start()`` listens for new batches
in the spool folder and hands every record, in capture order, to the handler until it returns
False or ``stop()`` is called. It only reads: batches are never claimed or moved, so custom
consumers run beside the persistence consumer and each sees every message (like subscribers
of a message queue). By default only batches that appear after ``start()`` are read (a
subscription starts now); ``from_beginning=True`` also reads those already in the folder.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from provwh.core.config import get_settings
from provwh.transport.batches import BadLine, is_batch_name, iter_batch
from provwh.transport.spool import CLAIMED, DONE, locate

log = logging.getLogger("provwh.warehouse")


class BaseConsumer:
    """Reads messages from the spool folder and dispatches each to ``message_handler``."""

    def __init__(
        self,
        spool_dir: str | os.PathLike | None = None,
        poll_interval: float = 0.2,
        from_beginning: bool = False,
    ) -> None:
        if spool_dir is None:
            spool_dir = get_settings().get("buffer.spool_dir")
        self.spool_dir = os.path.abspath(os.fspath(spool_dir))
        self.poll_interval = poll_interval
        self.from_beginning = from_beginning
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: set[str] | None = None

    def message_handler(self, msg_obj: dict[str, Any]) -> bool:
        """Handle one message; return False to stop listening."""
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------
    def start(
        self,
        target: Callable[..., Any] | None = None,
        args: tuple = (),
        threaded: bool = True,
        daemon: bool = False,
    ) -> BaseConsumer:
        """Listen in a thread (``daemon`` as asked) or, with ``threaded=False``, right here."""
        self._stop.clear()
        self._seen = None if self.from_beginning else self._present()
        run = target or self._listen
        if not threaded:
            run(*args)
            return self
        self._thread = threading.Thread(
            target=run, args=args, name=f"provwh-{type(self).__name__}", daemon=daemon
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._thread = None

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- listening --------------------------------------------------------------------------
    def _present(self) -> set[str]:
        names: set[str] = set()
        for sub in ("", CLAIMED, DONE):
            try:
                names.update(n for n in os.listdir(os.path.join(self.spool_dir, sub))
                             if is_batch_name(n))  # fmt: skip
            except FileNotFoundError:
                pass
        return names

    def _listen(self) -> None:
        seen = self._seen if self._seen is not None else set()
        while not self._stop.is_set():
            present = self._present()
            for name in sorted(present - seen):
                seen.add(name)
                if not self._dispatch(name):
                    self._stop.set()
                    return
                if self._stop.is_set():
                    return
            seen &= present  # forget pruned batches: names never come back
            self._stop.wait(self.poll_interval)

    def _records(self, name: str) -> list[dict[str, Any]]:
        """The records of a batch wherever the loader has moved it meanwhile."""
        for _attempt in range(5):
            path = locate(self.spool_dir, name)
            if path is None:
                break
            try:
                return [r for _, r in iter_batch(path) if not isinstance(r, BadLine)]
            except FileNotFoundError:
                continue
        log.debug("provwh: batch %s was pruned before it could be read", name)
        return []

    def _dispatch(self, name: str) -> bool:
        for record in self._records(name):
            if self.message_handler(record) is False:
                return False
        return True
