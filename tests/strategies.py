"""Named Hypothesis strategies for hidden states, shared by the property suites.

Each strategy builds inputs a reader can recognise in a counterexample: a
per-token vector of width ``d``, with shapes chosen to attack the bounds
(one-hot, k equal spikes, heavy tails, large offsets, tiny and huge scales).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Largest finite magnitude of each dtype (the scales below stay inside it).
DTYPE_MAX = {name: float(torch.finfo(dtype).max) for name, dtype in DTYPES.items()}
DTYPE_TINY = {name: float(torch.finfo(dtype).tiny) for name, dtype in DTYPES.items()}

widths = st.integers(min_value=1, max_value=96)


@st.composite
def one_hot(draw, d: int) -> np.ndarray:
    h = np.zeros(d)
    h[draw(st.integers(0, d - 1))] = draw(st.sampled_from([-1.0, 1.0]))
    return h


@st.composite
def equal_spikes(draw, d: int) -> np.ndarray:
    k = draw(st.integers(1, d))
    h = np.zeros(d)
    h[draw(st.permutations(range(d)))[:k]] = 1.0
    return h


@st.composite
def heavy_tailed(draw, d: int) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).standard_cauchy(d)


@st.composite
def large_offset(draw, d: int) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    return draw(st.floats(-1e3, 1e3)) + np.random.default_rng(seed).standard_normal(d) * 1e-3


@st.composite
def arbitrary(draw, d: int) -> np.ndarray:
    return draw(hnp.arrays(np.float64, d, elements=st.floats(-1.0, 1.0, allow_nan=False)))


SHAPES = {
    "one_hot": one_hot,
    "equal_spikes": equal_spikes,
    "heavy_tailed": heavy_tailed,
    "large_offset": large_offset,
    "arbitrary": arbitrary,
}


@st.composite
def hidden_states(draw, dtypes=("float32", "float64", "bfloat16", "float16"), min_log_scale=None, max_log_scale=None):
    """A token ``h`` of width d: an adversarial shape times a scale spanning the
    dtype's whole finite range (1e-30 … 1e30 in float32), cast to the dtype.

    Returns ``(h, shape_name)``; the shape name makes counterexamples readable.
    """
    dtype = draw(st.sampled_from(dtypes))
    d = draw(widths)
    name = draw(st.sampled_from(sorted(SHAPES)))
    base = draw(SHAPES[name](d))
    peak = np.abs(base).max()
    if peak == 0 or not np.isfinite(peak):
        base, peak = np.ones(d), 1.0
    # Leave headroom of 4x below the dtype max and stay above its smallest normal.
    low = np.log10(DTYPE_TINY[dtype]) + 1 if min_log_scale is None else min_log_scale
    high = np.log10(DTYPE_MAX[dtype] / 4) if max_log_scale is None else max_log_scale
    scale = 10.0 ** draw(st.floats(low, high))
    h = torch.tensor(base / peak * scale, dtype=torch.float64).to(DTYPES[dtype])
    return h, name


lams = st.floats(min_value=0.1, max_value=8.0)
kappas = st.floats(min_value=0.5, max_value=50.0)  # drawn continuously: no special value of κ is assumed
thresholds = st.floats(min_value=0.01, max_value=5.0)


@st.composite
def gamma_peaks(draw, d: int) -> tuple[np.ndarray, int]:
    """A spiky γ of width ``d``: ones, with one coordinate ``i`` raised to a peak of
    2 … 50 (so max|γ| ≫ rms(γ)), and the peak's index ``i``.

    Used to align the input mass, the γ peak and the value direction on one
    coordinate: the construction that separates a bound using max|γ| from one
    using rms(γ) (proofs/output_bound.md)."""
    peak = draw(st.integers(0, d - 1))
    gamma = np.ones(d)
    gamma[peak] = draw(st.floats(2.0, 50.0)) * draw(st.sampled_from([-1.0, 1.0]))
    return gamma, peak


kappa_schedules = st.sampled_from(["decay", "grow", "mild_grow"])  # the non-constant ones


# --- bad input: every dtype torch has for a hidden state, and any shape ------------------

FLOATING_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
OTHER_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                torch.complex64, torch.complex128)


@st.composite
def any_dtype_tensors(draw) -> torch.Tensor:
    """A tensor of any dtype (floating or not) and any shape of rank 0–3, sizes 0–4,
    holding small integers (-3 … 3; 0 … 3 for uint8, 0/1 for bool), exact in every dtype."""
    dtype = draw(st.sampled_from(FLOATING_DTYPES + OTHER_DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    low = 0 if dtype in (torch.uint8, torch.bool) else -3
    high = 1 if dtype == torch.bool else 3
    values = draw(hnp.arrays(np.int64, shape, elements=st.integers(low, high)))
    return torch.tensor(values).to(dtype)


def scalar_parameters():
    """A value for κ or ε: in range, on its boundary, out of range, or not finite."""
    return st.one_of(
        st.floats(min_value=1e-3, max_value=50.0),
        st.sampled_from([0.0, -0.0, -1.0, -1e-9, float("nan"), float("inf"), -float("inf")]),
    )


def truncations(data: bytes):
    """``data`` cut at any byte: every proper prefix, the empty one included."""
    return st.integers(0, len(data) - 1).map(lambda cut: data[:cut])


# --- bad command lines: one invalid option on top of a small valid command ---------------

# Each command with options small enough that it would finish quickly if validation
# let a bad option through (so a missed check shows as a failure, not a hang).
CLI_BASES = {
    "trace": ["--depth", "1", "--width", "8", "--heads", "2", "--seq-len", "4", "--batch", "1"],
    "meanfield": ["--depth", "1", "--width", "8", "--heads", "2", "--seq-len", "4"],
    "sweep": ["--depth", "2", "--width", "8", "--heads", "2", "--seq-len", "4", "--seeds", "0", "--no-cache",
              "--no-progress"],
    "growth": ["--scheme", "rmsnorm", "--depth", "4", "--width", "8", "--heads", "2", "--seq-len", "4", "--seeds", "0",
               "1", "--no-cache", "--no-progress"],
    "variance": ["--depth", "2", "--width", "8", "--heads", "2", "--seq-len", "4", "--seeds", "0", "--batch", "1",
                 "--layers", "0", "--estimators", "reference"],
    "jacobian": ["--depth", "2", "--width", "8", "--heads", "2", "--seq-len", "4", "--seeds", "0", "--batch", "1",
                 "--probes", "1", "--schemes", "rmsnorm", "--layers", "0"],
    "bench": ["--widths", "8", "--memory-width", "8", "--meanfield-lengths", "4"],
    "bounds": ["--random-trials", "1", "--hill-climb-steps", "0"],
    "reproduce": ["--quick"],
    "gradients": ["--depth", "2", "--width", "8", "--heads", "2", "--seq-len", "4", "--seeds", "0", "--batch", "1",
                  "--probes", "1", "--schemes", "rmsnorm", "--no-progress"],
    "staleness": ["--depth", "1", "--width", "8", "--heads", "2", "--seq-len", "4", "--deltas", "0.1", "--seeds", "0",
                  "--batch", "1"],
    "position": ["--width", "8", "--heads", "2", "--seq-len", "4", "--peaks", "0.5", "--seeds", "0", "--batch", "2"],
    "decode": ["--dtypes", "float32", "--seeds", "0", "--steps", "1"],
}
CONFIG_COMMANDS = ("trace", "meanfield", "sweep", "growth", "variance", "jacobian", "gradients", "staleness", "position")
SEEDED_COMMANDS = ("sweep", "growth", "variance", "jacobian", "gradients", "staleness", "position", "decode")
INPUT_COMMANDS = ("trace", "meanfield", "sweep", "growth", "variance", "jacobian", "gradients", "staleness", "position")
SWEEP_COMMANDS = ("sweep", "growth")
# option → (commands that take it, kind of value)
CLI_OPTIONS = {
    **{f"--{name}": (CONFIG_COMMANDS, "size") for name in ("depth", "width", "heads", "kv-heads", "mlp-width", "seq-len")},
    **{f"--{name}": (CONFIG_COMMANDS, "positive") for name in ("lam-in", "lam-post", "kappa", "dyt-alpha", "derf-alpha",
                                                                 "rope-theta")},
    **{f"--{name}": (CONFIG_COMMANDS, "non_negative") for name in ("init-std", "lam-final")},
    **{f"--{name}": (CONFIG_COMMANDS, "choice") for name in ("scheme", "estimator", "kappa-schedule", "dtype")},
    "--device": (CONFIG_COMMANDS + ("bench",), "device"),
    "--batch": (INPUT_COMMANDS, "size"),
    "--length": (("trace", "meanfield", "sweep", "growth"), "size"),
    "--input-std": (INPUT_COMMANDS, "positive"),
    "--probes": (("jacobian", "gradients"), "size"),
    "--steps": (("decode",), "size"),
    "--deltas": (("staleness",), "non_negative"),
    "--peaks": (("position",), "fraction"),
    "--dtypes": (("decode",), "choice"),
    "--widths": (("bench",), "size"),
    "--threads": (("bench", "bounds"), "size"),
    "--random-trials": (("bounds",), "size"),
    "--seed": (("trace", "bounds"), "seed"),
    "--seeds": (SEEDED_COMMANDS, "seed"),
    "--level": (SWEEP_COMMANDS, "probability"),
    "--statistics": (("sweep",), "choice"),
    "--estimators": (("variance",), "choice"),
    "--schemes": (("jacobian", "gradients"), "choice"),
    "--attention": (("meanfield",), "choice"),
    "--grid-lams": (("variance",), "lam_pair"),
    "--layers": (("variance", "jacobian"), "layer"),
    "--positions": (("variance",), "position"),
    "--csv": (CONFIG_COMMANDS + ("bench", "bounds", "decode"), "output_file"),
    "--json": (CONFIG_COMMANDS + ("bench", "bounds", "decode"), "output_file"),
    "--summary-csv": (("sweep",), "output_file"),
    "--cache-dir": (SWEEP_COMMANDS, "output_folder"),
    "--out": (("reproduce",), "output_folder"),
}
# Placeholders the test turns into paths: an existing directory, a path below a
# regular file, a name with a trailing separator, an existing regular file.
BAD_OUTPUT_FILES = ("<directory>", "<file>/table.csv", "<directory>/")
BAD_OUTPUT_FOLDERS = ("<file>", "<file>/sub")
SEED_MAX = 2**63 - 1 - 10_000


def _not_a_number():
    return st.sampled_from(["nan", "inf", "-inf", "abc", "", "1,5"])


def bad_values(kind: str):
    """Text for an option of ``kind`` that it must reject."""
    return {
        "size": st.one_of(st.integers(max_value=0).map(str), st.sampled_from(["2.5", "1e3", "abc", ""])),
        "seed": st.one_of(st.integers(max_value=-1).map(str), st.integers(min_value=SEED_MAX + 1).map(str),
                          st.sampled_from(["0.5", "x"])),
        "positive": st.one_of(st.floats(max_value=0.0).map(repr), _not_a_number()),
        "non_negative": st.one_of(st.floats(max_value=0.0, exclude_max=True).map(repr), _not_a_number()),
        "fraction": st.one_of(st.floats(max_value=0.0, exclude_max=True).map(repr),
                              st.floats(min_value=1.0, exclude_min=True).map(repr), _not_a_number()),
        "probability": st.one_of(st.floats(max_value=0.0).map(repr), st.floats(min_value=1.0).map(repr),
                                 _not_a_number()),
        # Anything that is not an allowed value; a leading "-" would read as an option.
        "choice": st.text(max_size=12).filter(lambda text: not text.startswith("-")),
        "device": st.sampled_from(["cuda:99", "nonsense", "cpu:x", "", "meta", "xla"]),
        "lam_pair": st.one_of(st.sampled_from(["2", "2,1,3", "a,b", "2,-1", "0,1", "nan,1", ","])),
        "layer": st.integers(min_value=2).map(str),  # the base configurations have depth 2
        "position": st.integers(min_value=4).map(str),  # ... and seq_len 4
        "output_file": st.sampled_from(BAD_OUTPUT_FILES),
        "output_folder": st.sampled_from(BAD_OUTPUT_FOLDERS),
    }[kind]


@st.composite
def invalid_command_lines(draw, choices: dict) -> tuple[str, str, list[str]]:
    """``(command, option, argv)``: a small valid command line with one option made invalid.

    ``choices`` maps a choice option to its allowed values (drawn text that happens to
    be allowed is discarded). Repeated seeds are invalid too (a replicate counted twice).
    """
    option = draw(st.sampled_from(sorted(CLI_OPTIONS)))
    commands, kind = CLI_OPTIONS[option]
    command = draw(st.sampled_from(commands))
    if option == "--seeds" and draw(st.booleans()):
        repeated = draw(st.integers(0, 5))
        return command, option, [command, *CLI_BASES[command], option, str(repeated), str(repeated)]
    value = draw(bad_values(kind).filter(lambda text: text not in choices.get(option, ())))
    return command, option, [command, *CLI_BASES[command], option, value]


def signed_lambdas() -> st.SearchStrategy[float]:
    """λ of either sign, zero, small and beyond κ = 10 (trained parameters): any value in [-40, 40]."""
    return st.one_of(st.just(0.0), st.floats(-40.0, 40.0, allow_nan=False, allow_infinity=False))
