"""Keep freed image-sized blocks in the process instead of returning them to the OS.

glibc serves large allocations (a 1024 x 1024 float32 map is 4 MB) with fresh
``mmap`` pages and unmaps them on ``free``, so every new map page-faults its
way in again: measured on the opencv engine, about half the time of a
Laplace-Gaussian. Raising the mmap and trim thresholds lets such blocks be
reused. The ``xray-scale`` executable does this at start; it changes nothing
but the allocator's policy, and nothing on other C libraries.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc() -> bool:
    """Raise glibc's mmap threshold to 64 MB and its trim threshold to 256 MB.

    Blocks up to 64 MB (a batch of eight 1024 x 1024 float32 maps is 32 MB) then
    come from the heap, and each allocator arena keeps at most 256 MB free
    before returning memory to the OS, which bounds what the tuning can add to
    the resident size.

    Returns
    -------
    bool
        True if glibc accepted both settings; False elsewhere (not Linux, or
        a C library without ``mallopt``), where nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 256 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
