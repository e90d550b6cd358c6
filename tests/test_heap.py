"""The heap policy of streamed runs (experiments/heap.py): a run's freed activation buffers
serve the next run's, not page-faulted in afresh."""

from __future__ import annotations

import ctypes.util
import json
import platform
import statistics
import subprocess
import sys

import pytest

from bhyt_theory.experiments.heap import keep_freed_heap

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Seven streamed runs in a fresh process; prints the minor page faults of each of runs 3–7. With argument
# "without", the policy is never set (montecarlo's call replaced by a no-op).
_CHILD = """
import json, resource, sys
from bhyt_theory.experiments import montecarlo
from bhyt_theory.numerics.inputs import gaussian_inputs
from bhyt_theory.numerics.model import StackConfig

if sys.argv[1] == "without":
    montecarlo.keep_freed_heap = lambda: False
config = StackConfig(scheme="bhyt", depth=2, width=256, heads=4, seq_len=128)
x = gaussian_inputs(config.width, 8, config.seq_len, 1.0, 0)
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):  # the heap grows to hold a run's buffers: their pages fault in once
    montecarlo.stream_trace(config, 0, x)
per_run = []
for _ in range(5):
    before = faults()
    montecarlo.stream_trace(config, 0, x)
    per_run.append(faults() - before)
print(json.dumps(per_run))
"""


def median_faults_per_run(policy: str) -> float:
    result = subprocess.run([sys.executable, "-c", _CHILD, policy], capture_output=True, text=True, check=True)
    return statistics.median(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not GLIBC, reason="the policy is glibc's mallopt; elsewhere it does nothing (tested below)")
def test_repeated_streamed_runs_reuse_their_buffers_instead_of_faulting_them_in():
    # Measured on one machine, six fresh processes each: per-run medians 0–1 faults with the
    # policy (the same allocations find the same free memory; a run now and then faults 500–1000
    # pages where the heap's layout makes an aligned request miss), 2100–4800 without it
    # (buffers handed back to the kernel and faulted in again). The median over five runs
    # sets those exceptions aside; a tenth of the second is a wide margin.
    assert median_faults_per_run("with") < median_faults_per_run("without") / 10


def test_the_policy_is_set_once_and_says_whether_it_took():
    first = keep_freed_heap()
    assert keep_freed_heap() is first  # functools.cache: mallopt is called once per process
    assert first == (GLIBC and ctypes.util.find_library("c") is not None)
