"""The heap policy of streamed runs (experiments/heap.py): freed activation buffers are reused,
not page-faulted in afresh."""

from __future__ import annotations

import ctypes.util
import platform
import resource

import pytest
import torch

from bhyt_theory.experiments.heap import keep_freed_heap

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
BUFFER_BYTES = 16 << 20  # above glibc's default 128 KiB mmap threshold, below the policy's 32 MiB
PAGE_BYTES = resource.getpagesize()


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not GLIBC, reason="the policy is glibc's mallopt; elsewhere it does nothing (tested below)")
def test_a_freed_activation_buffer_is_reused_without_page_faults():
    assert keep_freed_heap()
    for _ in range(2):  # the heap grows to hold the first buffers of this size: their pages fault in
        torch.empty(BUFFER_BYTES // 4).fill_(1.0)
    before = minor_faults()
    for _ in range(10):
        torch.empty(BUFFER_BYTES // 4).fill_(1.0)  # freed at once, as a block's activations are
    # Without the policy each buffer is a fresh mmap and every page faults: 10 · 4096 faults at
    # 4 KiB pages. With it the same heap memory serves all ten; the interpreter and allocator's
    # own bookkeeping add a few faults, far below one buffer's page count.
    assert minor_faults() - before < BUFFER_BYTES // PAGE_BYTES


def test_the_policy_is_set_once_and_says_whether_it_took():
    first = keep_freed_heap()
    assert keep_freed_heap() is first  # functools.cache: mallopt is called once per process
    assert first == (GLIBC and ctypes.util.find_library("c") is not None)
