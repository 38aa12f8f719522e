"""Read and normalize the next chunks in a thread while the current one is being written.

Normalizing is Python work; writing to PostgreSQL is mostly waiting for the server, with the
GIL released, so the two overlap (measured: +15-20%). Writing to DuckDB takes the GIL back
after each of its many short calls, and each time waits for the normalizing thread to let go
of it, which costs more than the overlap gains: ``depth=0`` normalizes in the caller's thread.
The queue is short: memory holds at most ``depth`` normalized chunks whatever the input size.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from provwh.warehouse.normalize import Normalized, normalize_chunk
from provwh.warehouse.reader import read_chunks


@dataclass
class Item:
    """A normalized chunk of ``path``; or the end of ``path`` (``norm`` None); or its error."""

    path: str
    norm: Normalized | None = None
    error: BaseException | None = None


_END = object()


def file_items(path: str, max_records: int, skip: int = 0) -> Iterator[Item]:
    """The items of one file, normalized here; the first ``skip`` chunks left out."""
    try:
        for chunk in read_chunks(path, max_records):
            if chunk.index >= skip:
                yield Item(path, normalize_chunk(chunk))
    except Exception as exc:  # an unreadable file: the caller decides
        yield Item(path, error=exc)
        return
    yield Item(path)


def normalized_chunks(
    paths: list[str | os.PathLike], max_records: int, depth: int = 2
) -> Iterator[Item]:
    """Items for every chunk of every file, in order, each file closed by an end item."""
    if depth <= 0:
        for path in paths:
            yield from file_items(os.fspath(path), max_records)
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for path in paths:
                for item in file_items(os.fspath(path), max_records):
                    if not put(item):
                        return
        finally:
            put(_END)

    thread = threading.Thread(target=produce, name="provwh-normalize", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()
