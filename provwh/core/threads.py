"""provwh's background threads, and the signals they must leave to the main thread."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Python runs signal handlers in the main thread only, but the kernel hands a process-directed
# signal to any thread that does not block it. Had a background thread taken SIGTERM while
# the main thread waited in a lock (a multiprocessing.Pool worker waiting for work does),
# the handler would never run and the process would neither flush nor end.
_LEFT_TO_MAIN = {signal.SIGTERM, signal.SIGINT}


def leave_signals_to_main() -> None:
    """Block SIGTERM and SIGINT in the calling (background) thread; call it first thing."""
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _LEFT_TO_MAIN)
    except (AttributeError, OSError, ValueError):  # a platform without per-thread masks
        pass


@contextmanager
def signals_held() -> Iterator[None]:
    """In the main thread, hold SIGTERM and SIGINT until the block ends (elsewhere: nothing).

    For work that a handler must not cut in two: a flush interrupted by the SIGTERM handler
    (which flushes, then ends the process) would lose the records the interrupted flush had
    already taken from the queue. Held, the signal is handled right after the block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _LEFT_TO_MAIN)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def handling_keyboard_interrupt() -> bool:
    """Whether a Ctrl+C is being handled: a ``with`` block it left, an ``except`` block, or
    the interpreter's exit after it went unhandled."""
    kind = sys.exc_info()[0] or getattr(sys, "last_type", None)
    return isinstance(kind, type) and issubclass(kind, KeyboardInterrupt)
