"""Atomic file writes, shared by every stage that writes: a temporary file in the target's
folder, flushed and synced, then renamed over the target. An interrupted run never leaves a
half-written module, checkpoint, table or plot (DESIGN.md)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_writer", "write_atomically"]


@contextlib.contextmanager
def atomic_writer(path) -> Iterator[IO[bytes]]:
    """A binary handle on a temporary file that replaces ``path`` when the block succeeds."""
    path = Path(path)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below, renamed on success)
        mode="wb", delete=False, dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # NamedTemporaryFile creates the file 0o600: keep an existing file's mode, else 0o644.
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(handle.name, mode)
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise


def write_atomically(path, data: bytes, *, only_if_changed: bool = False) -> bool:
    """Write ``data`` to ``path`` atomically; with ``only_if_changed`` leave a file that
    already holds exactly these bytes alone. Returns whether the file was written."""
    path = Path(path)
    if only_if_changed and path.is_file() and path.read_bytes() == data:
        return False
    with atomic_writer(path) as handle:
        handle.write(data)
    return True
