"""Normalize batch files in worker processes; the loading process only writes.

In one process, parsing and normalizing share the GIL with the writes, and the database waits
for its data between them (measured with PostgreSQL: the client's work and the server's mostly
took turns). A worker process parses and normalizes, and encodes the task tables' rows for the
engine: COPY text for PostgreSQL (``copy_text``), Arrow tables for DuckDB. The loading process
then probes keys and hands the encoded rows over. A chunk with a task already stored (to be
merged) is parsed again in the loading process, whose merge path needs the records.

The workers are plain subprocesses (``python -m provwh.warehouse.workers``), not
``multiprocessing``: that would import the user's ``__main__`` again in each child. The loader
sends a file's path on a worker's stdin; the worker answers with one frame per chunk (length,
then the pickled ``pipeline.Item``) and an end frame. Files go round-robin to the workers and
come back in order. A worker that dies is noticed (end of its output): the file it was on and
the rest are normalized in this process instead, nothing skipped.
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
from provwh.warehouse.normalize import Normalized
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
    for t in ENCODED_TABLES:
        setattr(norm.rows, t, [])
    norm.encoded = encoded
    norm.tasks = dict.fromkeys(norm.tasks)
    return norm


def _send(out, item: Item) -> None:
    try:
        data = pickle.dumps(item, protocol=5)
    except Exception as exc:  # an exception that does not pickle: its text does
        data = pickle.dumps(Item(item.path, error=RuntimeError(str(item.error) or repr(exc))))
    out.write(_HEADER.pack(len(data)))
    out.write(data)
    out.flush()


def serve(inp, out) -> None:
    """Answer requests (``encoding<TAB>max_records<TAB>path`` lines) until stdin closes."""
    for line in inp:
        encoding, max_records, path = line.decode("utf-8").rstrip("\n").split("\t", 2)
        for item in file_items(path, int(max_records)):
            if item.norm is not None:
                item.norm = encode(item.norm, encoding)
            try:
                _send(out, item)
            except BrokenPipeError:  # the loader is gone
                return


# --- loader side ---------------------------------------------------------------------------


class _Worker:
    def __init__(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "provwh.warehouse.workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.frames: queue.Queue = queue.Queue(maxsize=_AHEAD)
        self.sent: deque[str] = deque()  # paths asked for, not finished yet
        self.stopping = threading.Event()
        self.reader = threading.Thread(target=self._read, name="provwh-worker-read", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        out = self.proc.stdout
        try:
            while True:
                head = out.read(_HEADER.size)
                if len(head) < _HEADER.size:
                    break
                (size,) = _HEADER.unpack(head)
                data = out.read(size)
                if len(data) < size:
                    break
                if not self._put(pickle.loads(data)):
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
            self.proc.stdin.write(f"{encoding}\t{max_records}\t{path}\n".encode())
            self.proc.stdin.flush()
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


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the loader's to handle
    serve(sys.stdin.buffer, sys.stdout.buffer)
