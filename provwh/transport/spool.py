"""The spool folder: where producers drop batch files and the loader picks them up.

Layout (one folder, shared by any number of producer processes and one loader)::

    spool_dir/<batch>.jsonl|.parquet     ready: complete, not yet claimed by a loader
    spool_dir/claimed/<batch>            being loaded (moved here by the loader)
    spool_dir/done/<batch>               loaded and committed (kept for dumps, then pruned)
    spool_dir/rejected/<batch>.rejects.jsonl   lines the loader set aside, with reasons

A batch name is ``<epoch ms>-<host>-<pid>-<run>-<seq>.<ext>``: names sort in capture order,
and no two processes (or two controllers in one process) ever produce the same name.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

from provwh.core.serialize import Lines
from provwh.core.text import first_line
from provwh.transport.batches import (
    SUFFIXES,
    count_records,
    is_batch_name,
    list_batches,
    write_batch,
)

log = logging.getLogger("provwh")
CLAIMED, DONE, REJECTED = "claimed", "done", "rejected"
_SAFE = re.compile(r"[^A-Za-z0-9_.]+")


def _host_tag() -> str:
    import socket

    return _SAFE.sub("_", socket.gethostname())[:40] or "host"


def fallback_folder() -> str:
    """Where batches go when the spool folder cannot take them (full, read-only, gone): a
    folder of this user's in the system's temporary directory."""
    import tempfile

    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return os.path.join(tempfile.gettempdir(), f"provwh-{user}", "spool")


class SpoolWriter:
    """Writes one producer's batches into the spool folder and remembers their names.

    When the spool folder refuses a batch (a full disk, a read-only folder: ``OSError``),
    this batch and the next ones go to ``fallback`` (once, with a warning naming both
    folders); if that refuses too, ``write`` raises and the caller keeps the records.
    """

    def __init__(
        self,
        spool_dir: str | os.PathLike,
        run_id: str,
        fmt: str,
        fsync: bool,
        fallback: str | os.PathLike | None = None,
    ) -> None:
        self.spool_dir = os.path.abspath(os.fspath(spool_dir))
        self.fallback = os.path.abspath(os.fspath(fallback or fallback_folder()))
        self.folder = self.spool_dir  # where batches go now
        self.run_id = _SAFE.sub("_", run_id)[:32]
        self.fmt = fmt
        self.fsync = fsync
        self.names: list[str] = []  # this process's batches in spool_dir
        self.fallback_names: list[str] = []  # ... and in the fallback folder
        self._seq = 0
        self._host = _host_tag()
        try:
            os.makedirs(self.spool_dir, exist_ok=True)
        except OSError as exc:
            self._fall_back(exc)
        else:
            remove_stale_partials(self.spool_dir)

    def reset_after_fork(self) -> None:
        """A forked child writes its own batches; the parent's names are not its own."""
        self.names = []
        self.fallback_names = []
        self._seq = 0

    def write(self, records: Iterable[dict[str, Any]] | Lines) -> str:
        records = records if isinstance(records, (list, Lines)) else list(records)
        self._seq += 1
        name = (
            f"{int(time.time() * 1000):013d}-{self._host}-{os.getpid()}-{self.run_id}-"
            f"{self._seq:06d}{SUFFIXES[self.fmt]}"
        )
        try:
            write_batch(os.path.join(self.folder, name), records, self.fmt, self.fsync)
        except OSError as exc:
            if self.folder != self.spool_dir:
                raise
            self._fall_back(exc)
            write_batch(os.path.join(self.folder, name), records, self.fmt, self.fsync)
        (self.names if self.folder == self.spool_dir else self.fallback_names).append(name)
        return name

    def _fall_back(self, exc: OSError) -> None:
        os.makedirs(self.fallback, exist_ok=True)  # raises when that cannot be written either
        log.warning(
            "provwh: the spool folder %s cannot take batches (%s); this run's batches go to "
            "%s from now on (load them with `provwh load %s`)",
            self.spool_dir,
            exc.strerror or first_line(exc),
            self.fallback,
            self.fallback,
        )
        self.folder = self.fallback

    def run_batches(self) -> list[tuple[str, list[str]]]:
        """(folder, batch names) of this run, forked children's included: the spool folder,
        and the fallback folder when it was used."""
        found = [(self.spool_dir, run_names(self.spool_dir, self.run_id, self.names))]
        if self.folder != self.spool_dir or os.path.isdir(self.fallback):
            names = run_names(self.fallback, self.run_id, self.fallback_names)
            if names:
                found.append((self.fallback, names))
        return found


STALE_PARTIAL_SECONDS = 600.0


def remove_stale_partials(folder: str, older_than: float = STALE_PARTIAL_SECONDS) -> int:
    """Delete the partial batch files (``.<name>.<pid>.tmp``) a killed writer left behind,
    once they are old enough that no live writer can still be on them; returns how many."""
    cutoff = time.time() - older_than
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
    return removed


def locate(spool_dir: str | os.PathLike, name: str) -> Path | None:
    """Where batch ``name`` is now (ready, claimed or done), or None if it is gone."""
    from pathlib import Path

    for sub in ("", CLAIMED, DONE):
        path = Path(spool_dir, sub, name)
        if path.exists():
            return path
    return None


def run_names(spool_dir: str | os.PathLike, run_id: str, known: Iterable[str]) -> list[str]:
    """Every batch of one run, in capture order: ``known`` and those its forked children wrote.

    A child inherits the run id (it is in every batch name) and writes batches of its own,
    which its parent never sees written; they are found by name wherever the loader put them.
    """
    tag = f"-{run_id}-"
    found = set(known)
    for sub in ("", CLAIMED, DONE):
        try:
            names = os.listdir(os.path.join(spool_dir, sub))
        except FileNotFoundError:
            continue
        found.update(n for n in names if tag in n and is_batch_name(n))
    return sorted(found)  # names start with the time, then host, pid and sequence


def _raw_block_of(path: Path, skip_type: bytes | None) -> bytes:
    """The batch's JSON lines as one block of bytes, each line ending with a newline.

    A JSONL batch is its file's bytes, less the lines of ``skip_type``: the dump copies them
    rather than a line at a time (batches are written by ``dumps_lines``: one record a line).
    """
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["type", "record"])
        kinds = table.column("type").to_pylist()
        texts = table.column("record").to_pylist()
        skip = skip_type.decode() if skip_type else None
        lines = [t.encode("utf-8") for k, t in zip(kinds, texts, strict=True) if t and k != skip]
        return b"".join(ln + b"\n" for ln in lines)
    with open(path, "rb") as fh:
        data = fh.read()
    if data and not data.endswith(b"\n"):
        data += b"\n"
    if not skip_type:
        return data
    # cut out the lines of the type skipped: found by a search, the rest copied as it is
    prefix = b'{"type":"' + skip_type + b'"'
    needle = b"\n" + prefix
    kept, start = [], 0
    at = 0 if data.startswith(prefix) else data.find(needle) + 1 or -1
    while at != -1:  # ``at``: where a line to skip begins
        kept.append(data[start:at])
        start = data.find(b"\n", at) + 1  # after its newline (data ends with one)
        at = data.find(needle, start - 1) + 1 or -1
    kept.append(data[start:])
    return b"".join(kept) if len(kept) > 1 else data


def iter_raw_blocks(
    spool_dir: str | os.PathLike,
    names: list[str],
    skip_type: bytes | None = None,
    missing: Callable[[str], None] | None = None,
    whole: Collection[str] = (),
) -> Iterator[bytes]:
    """The JSON lines of the named batches, in order, a batch's lines as one block of bytes
    (each line ending with a newline), wherever the loader has moved them.

    Records whose ``type`` is ``skip_type`` are left out (we write ``type`` first, so a prefix
    test suffices); the batches named in ``whole`` are known to hold none. A batch moved
    between our look and our read is looked up again, so a loader working on the same folder
    never makes a record disappear. A batch that is gone
    (loaded and pruned from ``done/``, set aside in ``rejected/``) raises FileNotFoundError,
    or with ``missing`` is passed to it and skipped.
    """
    for name in names:
        for _attempt in range(5):
            path = locate(spool_dir, name)
            if path is None:
                if missing is not None:
                    missing(name)
                    break
                raise FileNotFoundError(f"batch {name} is no longer in {spool_dir}")
            try:
                block = _raw_block_of(path, None if name in whole else skip_type)
            except FileNotFoundError:
                continue
            if block:
                yield block
            break
        else:
            raise FileNotFoundError(f"batch {name} kept moving while being read in {spool_dir}")


def iter_raw_lines(
    spool_dir: str | os.PathLike,
    names: list[str],
    skip_type: bytes | None = None,
    missing: Callable[[str], None] | None = None,
) -> Iterator[bytes]:
    """``iter_raw_blocks``, a line (without its newline) at a time."""
    for block in iter_raw_blocks(spool_dir, names, skip_type, missing):
        yield from block.split(b"\n")[:-1]


DONE_RETENTION = 3600.0  # buffer.done_retention's default
DONE_MAX_BYTES = 1024 << 20  # buffer.done_max_mb's


def prune_done(
    folder: str | os.PathLike,
    retention: float = DONE_RETENTION,
    max_bytes: int | None = DONE_MAX_BYTES,
    keep: Callable[[str], bool] | None = None,
) -> tuple[int, int]:
    """Delete loaded batches of ``folder`` (a spool folder's ``done/``); returns how many,
    and the bytes of those left.

    First those older than ``retention`` seconds, except those ``keep(name)`` holds (the
    batches of a run still going in this process, which its dump at stop reads); then, while
    the folder holds more than ``max_bytes``, the oldest ones, whatever their age, so a busy
    consumer cannot fill the disk (``buffer.done_retention``, ``buffer.done_max_mb``).
    """
    entries = []
    for path in list_batches(folder):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        entries.append((st.st_mtime, path.name, st.st_size, path))
    entries.sort()
    total = sum(e[2] for e in entries)
    cutoff = time.time() - retention
    removed, left = 0, []
    for entry in entries:
        mtime, name, size, path = entry
        if mtime < cutoff and not (keep is not None and keep(name)):
            removed += _unlink(path)
            total -= size
        else:
            left.append(entry)
    if max_bytes is not None:
        for _mtime, _name, size, path in left:
            if total <= max_bytes:
                break
            removed += _unlink(path)
            total -= size
    return removed, total


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:  # pruned by another process meanwhile
        return 0
    return 1


def left_to_load(spool_dir: str | os.PathLike, names: Iterable[str]) -> tuple[int, int]:
    """How many of the named batches are not loaded yet (ready or claimed), and their records."""
    batches = records = 0
    for name in names:
        for sub in ("", CLAIMED):
            try:
                n = count_records(os.path.join(spool_dir, sub, name))
            except FileNotFoundError:
                continue
            batches += 1
            records += n
            break
    return batches, records


def remove(spool_dir: str | os.PathLike, names: list[str]) -> int:
    """Delete the named batches wherever they are; returns how many were removed."""
    removed = 0
    for name in names:
        path = locate(spool_dir, name)
        if path is not None:
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed


class NoBatchFiles(FileNotFoundError):
    """A path given as batch files names none."""


def is_spool_folder(path: str | os.PathLike) -> bool:
    return os.path.isdir(os.path.join(path, CLAIMED)) or os.path.isdir(os.path.join(path, DONE))


def folder_batches(folder: str | os.PathLike, loaded: bool = False) -> list[Path]:
    """The batch files of a folder, in capture order.

    Of a spool folder: the ready batches and those being loaded (``claimed/``), and with
    ``loaded`` those already loaded (``done/``) too: a query over a run's files wants them all,
    a load only what is not loaded yet.
    """
    subs = ("",)
    if is_spool_folder(folder):
        subs = ("", CLAIMED, DONE) if loaded else ("", CLAIMED)
    found = [p for sub in subs for p in list_batches(os.path.join(folder, sub))]
    return sorted(found, key=lambda p: p.name)


def expand_paths(paths: Iterable[str | os.PathLike] | str, loaded: bool = False) -> list[str]:
    """Batch files named by files, folders (see ``folder_batches``) or glob patterns, in order.

    Raises ``NoBatchFiles`` naming the path that gave nothing.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for item in paths:
        path = os.fspath(item)
        if os.path.isdir(path):
            found = [str(p) for p in folder_batches(path, loaded)]
            if not found:
                raise NoBatchFiles(f"{path}: no .jsonl or .parquet batch files in this folder")
            out += found
        elif any(c in path for c in "*?["):
            found = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
            if not found:
                raise NoBatchFiles(f"{path}: no file matches this pattern")
            out += found
        elif os.path.isfile(path):
            out.append(path)
        else:
            raise NoBatchFiles(f"{path}: no such file")
    if not out:
        raise NoBatchFiles("no batch files given")
    return list(dict.fromkeys(out))
