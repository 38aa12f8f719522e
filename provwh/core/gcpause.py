"""Pausing Python's cyclic garbage collector while a large result is built.

Building a report or an export materializes hundreds of thousands of small dicts and lists,
none of them in reference cycles. Each allocation burst makes the collector walk every live
container again (a full collection is triggered as the long-lived ones grow), which cost a
report over 50k tasks a quarter of its time, and ``task_query`` of 50k tasks half of its.
Reference counting still frees everything; only the cycle search waits until the block ends.
The switch is process-wide: blocks in several threads overlap safely (the first one to pause
it turns it back on), and a collector the program turned off stays off.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (re-enabled after, if it was on)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
