"""The C heap policy of streamed Monte Carlo runs: keep freed activation buffers for reuse.

A streamed block allocates a few activation buffers of megabytes each (at width 512,
batch × T 1024: the 8 MiB gate, up and product of the MLP) and frees them before the
next block. Under glibc's default, adaptive policy much of that memory goes back to the
kernel — large buffers as their own ``mmap``, the top of the heap by trimming — and every
buffer of the next block is page-faulted in afresh: 7500–8400 minor page faults per
block at that shape (``resource.getrusage``), 5–11 % of the bare forward pass's time in
two measurements (``make bench``'s width-512 block, 1 thread). ``keep_freed_heap`` makes
glibc serve every allocation up to ``MMAP_THRESHOLD`` from the heap and never trim it, so
the buffers are reused: about 100 faults per block.

What it changes: the process's resident memory stays at its high-water mark instead of
falling between blocks (the high-water mark itself is unchanged; ``make bench`` measures
it). What it does not change: any computed value — allocation never changes the
arithmetic. The setting is process-wide and lasts for the process's lifetime; on a C
library without ``mallopt`` (not glibc) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
"""Allocations up to 32 MiB come from the heap (glibc's largest allowed threshold on 64-bit)."""
TRIM_THRESHOLD = (1 << 31) - 1
"""Free memory at the top of the heap is returned to the kernel only beyond 2 GiB."""


@functools.cache
def keep_freed_heap() -> bool:
    """Set the heap policy of the module docstring, once per process.

    Returns
    -------
    bool
        True if glibc took both settings, False where there is no ``mallopt`` or it
        refused one.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
