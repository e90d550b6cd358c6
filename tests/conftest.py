"""Shared test set-up: a deterministic Hypothesis profile and single-threaded torch.

Profiles (choose with HYPOTHESIS_PROFILE): "ci" (default) is derandomised and
writes no example database, so CI runs are reproducible; "dev" explores with
fresh random examples and more of them.
"""

import os

import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=500, deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Two cores: intra-op threads only add contention and make timings noisy.
torch.set_num_threads(1)
