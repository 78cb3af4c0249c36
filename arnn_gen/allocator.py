"""Keep freed memory in the process: the C allocator setting the hot loops need on Linux.

Input: nothing (a process-wide setting). Output: :func:`keep_freed_memory` returns whether
it changed anything.

Note [Freed memory and page faults]
    The emitted modules evaluate their layers on cache-sized blocks, one temporary tensor of
    a few MiB per elementwise pass. glibc's malloc serves such sizes either by ``mmap``
    (returned to the kernel on free) or from its heap, which it trims back to the kernel
    when the free space at its top exceeds a threshold; both thresholds adapt to what the
    process freed before. Depending on that history, every temporary is faulted in page by
    page again: the same SK_1RSB sampling pass (N = 200, B = 2000, 2 threads) took 0.23 s
    with no page faults and 0.5-1.1 s with 0.1-0.7 million of them, in otherwise identical
    processes (docs/performance.md). Fixing both thresholds high keeps freed blocks in the
    heap for reuse: the fast case, always. The cost is that the process's resident memory
    stays at its peak instead of shrinking after it. ``arnn-gen`` sets this for its own
    commands; scripts that import emitted modules may call it once at their start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Blocks below this size come from the heap, not from mmap (glibc's largest allowed value
#: on 64-bit systems is 32 MiB).
MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the top of the heap returned to the kernel only beyond this.
TRIM_THRESHOLD = 2**30

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (Note [Freed memory and page faults]); True
    when they were set, False on other platforms or C libraries (then nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
