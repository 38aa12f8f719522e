"""Normalize batch files in worker processes; the loading process only writes.

In one process, parsing and normalizing share the GIL with the writes, and the database waits
for its data between them (measured with PostgreSQL: the client's work and the server's mostly
took turns). A worker process parses and normalizes, and encodes the task tables' rows for the
engine: COPY text for PostgreSQL (``copy_text``), Arrow tables for DuckDB. The loading process
then probes keys and hands the encoded rows over. A chunk with a task already stored (to be
merged) is parsed again in the loading process, whose merge path needs the records.

The workers are plain subprocesses running ``main``, not ``multiprocessing``: that would
import the user's ``__main__`` again in each child. Both ways, messages are frames (length,
then a pickle): the loader sends (encoding, max_records, path) on a worker's stdin; the worker
answers with one ``pipeline.Item`` per chunk and an end item. Files go round-robin to the
workers and come back in order. A worker that dies is noticed (end of its output): the file it
was on and the rest are normalized in this process instead, nothing skipped.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator

from provwh.warehouse import copy_text
from provwh.warehouse.normalize import Normalized, RowSet, workflows_of
from provwh.warehouse.pipeline import Item, file_items
from provwh.warehouse.schema import TASK_CHILD_TABLES

log = logging.getLogger("provwh.warehouse")

ENCODED_TABLES = ("tasks", *TASK_CHILD_TABLES)
_HEADER = struct.Struct("<Q")
_AHEAD = 2  # files sent to a worker before the loader asks for them; frames queued likewise
_DEAD = object()


def default_workers() -> int:
    """Half the cores: the other half is for the database server and the loading process."""
    return max(1, (os.cpu_count() or 2) // 2)


# --- worker side ---------------------------------------------------------------------------


def encode(norm: Normalized, encoding: str) -> Normalized:
    """The task tables' rows encoded for the engine; the task records reduced to their ids.

    ``copy``: PostgreSQL COPY text; ``arrow``: Arrow tables for DuckDB (``duck.to_arrow``).
    """
    if encoding == "arrow":
        from provwh.warehouse.duck import to_arrow as encoder
    else:
        encoder = copy_text.encode
    try:
        encoded = {t: (len(rows), encoder(t, rows))
                   for t in ENCODED_TABLES if (rows := getattr(norm.rows, t))}  # fmt: skip
    except (TypeError, ValueError, UnicodeError, OverflowError):
        return norm  # a value the encoder does not take: the loading process writes the rows
    norm.task_workflows = workflows_of(RowSet(tasks=norm.rows.tasks))
    for t in ENCODED_TABLES:
        setattr(norm.rows, t, [])
    norm.encoded = encoded
    norm.tasks = dict.fromkeys(norm.tasks)
    return norm


def _write_frame(out, obj: object) -> None:
    data = pickle.dumps(obj, protocol=5)
    out.write(_HEADER.pack(len(data)))
    out.write(data)
    out.flush()


def _read_frame(inp) -> object:
    """The next frame's object; ``_DEAD`` at the end of the stream."""
    head = inp.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return _DEAD
    (size,) = _HEADER.unpack(head)
    data = inp.read(size)
    return pickle.loads(data) if len(data) == size else _DEAD


def _send(out, item: Item) -> None:
    try:
        _write_frame(out, item)
    except pickle.PicklingError:  # an exception that does not pickle: its text does
        _write_frame(out, Item(item.path, error=RuntimeError(str(item.error))))


def serve(inp, out) -> None:
    """Answer requests until stdin closes."""
    while (request := _read_frame(inp)) is not _DEAD:
        encoding, max_records, path = request
        for item in file_items(path, max_records):
            if item.norm is not None:
                item.norm = encode(item.norm, encoding)
            try:
                _send(out, item)
            except BrokenPipeError:  # the loader is gone
                return


# --- loader side ---------------------------------------------------------------------------


# the folder provwh is imported from, appended (never prepended: it may be site-packages)
_BOOT = (
    "import sys; sys.path.append(sys.argv[1]); from provwh.warehouse.workers import main; main()"
)


class _Worker:
    def __init__(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, root], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.frames: queue.Queue = queue.Queue(maxsize=_AHEAD)
        self.sent: deque[str] = deque()  # paths asked for, not finished yet
        self.stopping = threading.Event()
        self.reader = threading.Thread(target=self._read, name="provwh-worker-read", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while (frame := _read_frame(self.proc.stdout)) is not _DEAD:
                if not self._put(frame):
                    return
        except Exception as exc:  # reported as the worker's death below
            log.debug("provwh: reading a worker failed: %s", exc)
        self._put(_DEAD)

    def _put(self, frame: object) -> bool:
        while not self.stopping.is_set():
            try:
                self.frames.put(frame, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def ask(self, encoding: str, path: str, max_records: int) -> bool:
        try:
            _write_frame(self.proc.stdin, (encoding, max_records, path))
        except OSError:
            return False
        self.sent.append(path)
        return True

    def stop(self, kill: bool = False) -> None:
        self.stopping.set()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if kill:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)


class WorkerPool:
    """Worker processes normalizing files for one loader; started on first use."""

    def __init__(self, size: int, encoding: str = "copy") -> None:
        self.size = max(1, size)
        self.encoding = encoding
        self._workers: list[_Worker] = []

    def start(self) -> None:
        """Start the processes now (``OSError`` if they cannot be)."""
        while len(self._workers) < self.size:
            self._workers.append(_Worker())

    def chunks(self, paths: list[str | os.PathLike], max_records: int) -> Iterator[Item]:
        """Items for every chunk of every file, in order, as ``pipeline.normalized_chunks``."""
        paths = [os.fspath(p) for p in paths]
        self.start()
        workers = self._workers
        pending = deque(enumerate(paths))
        finished = False

        def ask_ahead() -> None:
            while pending:
                i, path = pending[0]
                w = workers[i % len(workers)]
                if len(w.sent) >= _AHEAD:
                    return
                pending.popleft()
                if not w.ask(self.encoding, path, max_records):
                    w.sent.append(path)  # its death shows when its answers are read

        try:
            ask_ahead()
            for i, path in enumerate(paths):
                w = workers[i % len(workers)]
                delivered = 0
                while True:
                    item = w.frames.get()
                    if item is _DEAD:
                        code = w.proc.poll()
                        log.warning(
                            "provwh: a normalizing worker exited (code %s); normalizing %s here",
                            code,
                            os.path.basename(path),
                        )
                        self.close(kill=True)
                        yield from file_items(path, max_records, skip=delivered)
                        for rest in paths[i + 1 :]:
                            yield from file_items(rest, max_records)
                        finished = True
                        return
                    yield item
                    if item.norm is None:  # end of the file, or its error
                        break
                    delivered += 1
                w.sent.popleft()
                ask_ahead()
            finished = True
        finally:
            if not finished:  # left early (an error, a stop): requests are in flight
                self.close(kill=True)

    def close(self, kill: bool = False) -> None:
        workers, self._workers = self._workers, []
        for w in workers:
            w.stop(kill=kill)


def main() -> None:
    """A worker process: serve the loader on stdin / stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the loader's to handle
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
