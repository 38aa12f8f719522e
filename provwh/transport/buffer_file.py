"""Buffer files: one JSONL file holding a run's messages (Flowcept's dump format)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

from provwh.transport.batches import read_batch

log = logging.getLogger("provwh")


def resolve_dump_path(
    path: str, workflow_id: str | None, append_workflow_id: bool, append_id: bool, unique_id: str
) -> str:
    """``flowcept_buffer.jsonl`` → ``flowcept_buffer_<workflow_id>_<id>.jsonl`` as configured.

    Producers of one workflow that share a folder each append an id; ``consolidate`` merges
    their files afterwards.
    """
    if not (append_workflow_id or append_id):
        return path
    from pathlib import Path

    p = Path(path)
    stem = p.stem
    if append_workflow_id and workflow_id:
        stem += f"_{workflow_id}"
    if append_id:
        stem += f"_{unique_id}"
    return str(p.with_name(stem + p.suffix))


def write_blocks(path: str, blocks: Iterable[bytes]) -> None:
    """Write blocks of JSON lines (each line ending with a newline) to ``path`` atomically
    (temp file + rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # pid and thread: two sessions (threads) of one process may dump at the same time
    tmp = os.path.join(
        directory, f".{os.path.basename(path)}.{os.getpid()}.{threading.get_ident()}.tmp"
    )
    with open(tmp, "wb") as fh:
        for block in blocks:
            fh.write(block)
    os.replace(tmp, path)


def write_lines(path: str, lines: Iterable[bytes]) -> None:
    """Write JSON lines (without their newlines) to ``path`` atomically."""
    write_blocks(path, (line + b"\n" for line in lines))


def read(path: str) -> list[dict[str, Any]]:
    """All messages of a buffer (or batch) file; bytes values come back as bytes."""
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"buffer file '{path}' was not found. Check that dumping is enabled "
            "(project.dump_buffer.enabled) and that capture was started and stopped."
        )
    return read_batch(path)


def consolidate(path: str, workflow_id: str, cleanup_files: bool = True) -> str:
    """Merge ``<stem>_<workflow_id>*<suffix>`` files beside ``path`` into one; returns its path."""
    from pathlib import Path

    base = Path(path)
    pattern = f"{base.stem}_{workflow_id}*{base.suffix}"
    target = base.with_name(f"{base.stem}_{workflow_id}{base.suffix}")
    matches = sorted(p for p in base.parent.glob(pattern) if p != target)
    if not matches:
        if target.exists():
            return str(target)
        if base.exists():
            return str(base)
        raise FileNotFoundError(f"no buffer files for workflow_id={workflow_id} in {base.parent}")
    sources = ([target] if target.exists() else []) + matches

    def lines() -> Iterable[bytes]:
        for src in sources:
            with open(src, "rb") as fh:
                for line in fh:
                    line = line.rstrip(b"\n")
                    if line:
                        yield line

    write_lines(str(target), lines())
    if cleanup_files:
        for src in matches:
            try:
                src.unlink()
            except FileNotFoundError:
                pass
        log.info("provwh: consolidated %d buffer files into %s", len(matches), target)
    return str(target)


def to_dataframe(records: list[dict[str, Any]], normalize: bool) -> Any:
    """A DataFrame of messages: dotted columns (``generated.loss``) when ``normalize``."""
    try:
        import pandas as pd
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "pandas is required for return_df=True: pip install 'provwh[pandas]'"
        ) from exc
    if normalize:
        return pd.json_normalize(records, sep=".")
    return pd.DataFrame.from_records(records)
