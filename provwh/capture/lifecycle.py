"""The capturing process's lifecycle: at interpreter exit, and in forked children.

Controllers still running at exit are stopped (or, in a forked child, flushed). A forked
child captures into batches of its own and must write them before it ends, whichever way it
ends: ``multiprocessing`` children leave with ``os._exit`` (no atexit: a finalizer flushes),
and ``multiprocessing.Pool`` ends its workers with SIGTERM when its ``with`` block exits (a
handler flushes, then does what the signal did before).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
from typing import Any

from provwh.capture import context

log = logging.getLogger("provwh")

_atexit_registered = False


def register_atexit() -> None:
    """Stop running controllers at exit (registered once, by the first start)."""
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_stop_all_at_exit)


def _stop_all_at_exit() -> None:
    for ctl in reversed(context.running_controllers()):
        try:
            ctl.at_exit()
        except KeyboardInterrupt:  # Ctrl+C while it loaded: it said what it left, go on
            pass
        except Exception as exc:  # keep going: other controllers still need their flush
            log.error("provwh: stopping a controller at exit failed: %r", exc)


def _flush_all(reason: str) -> None:
    for ctl in context.running_controllers():
        try:
            ctl.batch_buffer.flush()
        except Exception as exc:  # the child is ending: say what is lost, end anyway
            log.error("provwh: flushing %s failed: %r", reason, exc)


def _after_fork_in_child() -> None:
    controllers = context.running_controllers()
    if not controllers:
        return
    for ctl in controllers:
        ctl.after_fork()
    _flush_on_sigterm()
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        # multiprocessing children end with os._exit (no atexit) and clear the finalizer
        # registry after this hook; its after-fork callbacks run later, so register there.
        for ctl in controllers:
            mp_util.register_after_fork(ctl, _finalize_in_child)


def _flush_on_sigterm() -> None:
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        _flush_all("at SIGTERM")
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread of the child: nothing to install
        pass


def _finalize_in_child(ctl: Any) -> None:
    import multiprocessing.util as mp_util

    mp_util.Finalize(ctl, ctl.batch_buffer.flush, exitpriority=100)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
