"""arnn_gen.allocator: the glibc thresholds are set where glibc is the C library."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc")
def test_keep_freed_memory_sets_the_thresholds_on_glibc():
    # in a fresh process, so that this test process keeps its allocator as it is
    code = "from arnn_gen.allocator import keep_freed_memory; print(keep_freed_memory())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
