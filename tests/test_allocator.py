"""allocator: glibc accepts the settings on Linux; elsewhere nothing happens."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_tune_malloc_is_accepted_and_keeps_a_process_working():
    code = (
        "from xray_scale.allocator import tune_malloc; import numpy as np;"
        "ok = tune_malloc(); [np.ones((1024, 1024), np.float32).sum() for _ in range(20)];"
        "print(ok)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    glibc = platform.libc_ver()[0] == "glibc"
    assert done.stdout.strip() == str(glibc)
