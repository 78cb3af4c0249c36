"""Atomic file writes, shared by every stage that writes: a temporary file in the target's
folder, flushed and synced, then renamed over the target. An interrupted run never leaves a
half-written module, checkpoint, table or plot (DESIGN.md).

Temporaries are named ``.<target>.<pid>.<random>.tmp``: hidden, never taken for a result,
and removed when the write fails or the process is stopped by SIGTERM or SIGINT (the CLI
turns both into exceptions). A temporary left by a process killed outright (SIGKILL, power
loss) is removed by the next write into the same folder once its process no longer runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from arnn_gen.errors import ArnnGenError

__all__ = ["atomic_writer", "write_atomically", "stage", "replace_together", "remove_stale"]

_TEMPORARY = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale(folder) -> None:
    """Remove the temporaries in ``folder`` whose writing process no longer runs."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            found = _TEMPORARY.match(entry.name)
            if found and not _pid_alive(int(found.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _cannot_write(path: Path, error: OSError) -> ArnnGenError:
    return ArnnGenError(f"cannot write {path}: {error.strerror or error}")


@contextlib.contextmanager
def stage(path) -> Iterator[tuple[IO[bytes], Path]]:
    """A binary handle on a synced temporary beside ``path`` and the temporary's path; the
    caller renames it (:func:`replace_together`). The temporary is removed on failure."""
    path = Path(path)
    if path.is_dir():
        raise ArnnGenError(f"cannot write {path}: it is a directory")
    remove_stale(path.parent)
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below)
            mode="wb",
            delete=False,
            dir=path.parent,
            prefix=f".{path.name}.{os.getpid()}.",
            suffix=".tmp",
        )
    except OSError as error:
        raise _cannot_write(path, error) from None
    temporary = Path(handle.name)
    try:
        with handle:
            yield handle, temporary
            handle.flush()
            os.fsync(handle.fileno())
        # NamedTemporaryFile creates the file 0o600: keep an existing file's mode, else 0o644.
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(temporary, mode)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise _cannot_write(path, error) from None
        raise


def replace_together(pairs: list[tuple[Path, Path]]) -> None:
    """Rename each staged temporary over its target, all or none: when a rename fails, the
    targets already replaced get their old files back and every temporary is removed."""
    saved: list[tuple[Path, Path | None]] = []  # (target, a link to its old file or None)
    current = pairs[0][1] if pairs else Path()
    try:
        for temporary, target in pairs:
            current = target
            old = None
            if target.is_file():
                old = target.with_name(f".{target.name}.{os.getpid()}.old.tmp")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(old)
                try:
                    os.link(target, old)
                except OSError:  # a file system without hard links
                    shutil.copy2(target, old)
            saved.append((target, old))
            os.replace(temporary, target)
    except BaseException as error:
        for target, old in reversed(saved):
            with contextlib.suppress(OSError):
                if old is not None:
                    os.replace(old, target)
                    # rename() between two links of one file (the target not yet replaced)
                    # does nothing: remove the link then.
                    os.unlink(old)
                else:
                    os.unlink(target)
        for temporary, _ in pairs:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        if isinstance(error, OSError):
            raise _cannot_write(current, error) from None
        raise
    for _, old in saved:
        if old is not None:
            with contextlib.suppress(OSError):
                os.unlink(old)


@contextlib.contextmanager
def atomic_writer(path) -> Iterator[IO[bytes]]:
    """A binary handle on a temporary file that replaces ``path`` when the block succeeds."""
    path = Path(path)
    with stage(path) as (handle, temporary):
        yield handle
    replace_together([(temporary, path)])


def write_atomically(path, data: bytes, *, only_if_changed: bool = False) -> bool:
    """Write ``data`` to ``path`` atomically; with ``only_if_changed`` leave a file that
    already holds exactly these bytes alone. Returns whether the file was written."""
    path = Path(path)
    if only_if_changed and path.is_file() and path.read_bytes() == data:
        return False
    with atomic_writer(path) as handle:
        handle.write(data)
    return True
