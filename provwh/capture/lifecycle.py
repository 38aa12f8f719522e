"""The capturing process's lifecycle: at interpreter exit, and in forked children.

Controllers still running at exit are stopped (or, in a forked child, flushed). A forked
child captures into batches of its own and must write them before it ends, whichever way it
ends: ``multiprocessing`` children leave with ``os._exit`` (no atexit: a finalizer flushes),
and ``multiprocessing.Pool`` ends its workers with SIGTERM when its ``with`` block exits (a
handler flushes, then does what the signal did before; a thread makes sure it happens
even when the main thread is not there to run the handler).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from provwh.capture import context
from provwh.core.threads import leave_signals_to_main

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
        return
    if previous == signal.SIG_DFL:
        _watch_sigterm()


# A Python handler runs only when the main thread comes back to the interpreter. A signal
# that lands between a blocking call's last check and the call itself (a Pool worker waiting
# for the queue's lock, which its parent holds while it terminates the pool) trips the flag
# and is never acted on: the worker lives on and the parent waits for it forever. Python also
# writes each signal's number to the wakeup fd from the C-level handler, at once: a watcher
# thread reads it and, if the process is still alive shortly after, interrupts the main
# thread again and, as a last resort, flushes and ends the process itself.
_GRACE_S = 0.25
_NUDGES = 8
_wakeup: tuple[int, int] | None = None


def _watch_sigterm() -> None:
    global _wakeup
    inherited, _wakeup = _wakeup, None  # a parent that was itself a forked child had one
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        old = None
    taken = old is not None and old in (-1, inherited[1] if inherited else -1)
    if not taken and old is not None:
        signal.set_wakeup_fd(old)  # the program reads signals from its own fd (an event loop)
    # taken: the inherited pipe is no one's now; else the new one is not needed
    for fd in (inherited or ()) if taken else (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)
    if taken:
        _wakeup = (r, w)
        threading.Thread(
            target=_sigterm_watcher, args=(r,), name="provwh-sigterm", daemon=True
        ).start()


def _sigterm_watcher(r: int) -> None:
    leave_signals_to_main()
    while True:
        try:
            got = os.read(r, 64)
        except OSError:
            return
        if not got:
            return
        if signal.SIGTERM in got:
            break
    main = threading.main_thread().ident
    for _ in range(_NUDGES):
        time.sleep(_GRACE_S)  # the main thread's handler normally ends the process by now
        if main is not None:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                signal.pthread_kill(main, signal.SIGTERM)
    _flush_all("at SIGTERM")
    os._exit(128 + signal.SIGTERM)


def _finalize_in_child(ctl: Any) -> None:
    import multiprocessing.util as mp_util

    mp_util.Finalize(ctl, ctl.batch_buffer.flush, exitpriority=100)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
