"""Bad input gives either the correct result or a clear error, never a silently wrong
number: the normalisers over every dtype and shape (numerics/norms.py, "Validation"),
and the command line over generated bad options (bhyt_theory.cli: one line, exit 2).

Error model of the "correct result" branch: the drawn entries are small integers,
exact in every floating dtype; statistics are computed in float32 (float64 for
float64 input) with relative error ≤ 32u, u = 2⁻²⁴ (tests/test_norms.py), and the
output is rounded once to the input dtype (relative error ≤ eps(dtype)/2). We allow
eps(dtype) + 64u, relative and absolute (outputs are O(1)).
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    CLI_BASES,
    FLOATING_DTYPES,
    any_dtype_tensors,
    invalid_command_lines,
    scalar_parameters,
)

from bhyt_theory import cli
from bhyt_theory.cli import init_regime, options
from bhyt_theory.experiments import montecarlo
from bhyt_theory.numerics import model
from bhyt_theory.numerics.estimators import ESTIMATORS
from bhyt_theory.numerics.model import DTYPES, KAPPA_SCHEDULES, SCHEMES
from bhyt_theory.numerics.norms import (
    EPS,
    bhyt,
    derf,
    dyt,
    layer_norm,
    mean_square,
    rms_norm,
)
from bhyt_theory.numerics.probes import STATISTICS

U32 = 2.0**-24


def _reference_bhyt(h: torch.Tensor, lam: float, kappa: float, eps: float, estimate: float | None = None):
    m = h.square().mean(-1, keepdim=True) if estimate is None else torch.tensor(estimate, dtype=torch.float64)
    return torch.tanh(lam * h / (kappa * torch.sqrt(m + eps)))


# Each normaliser next to a from-scratch float64 expression of its formula.
NORMS = {
    "rms_norm": (rms_norm, lambda h: h / torch.sqrt(h.square().mean(-1, keepdim=True) + EPS)),
    "layer_norm": (layer_norm, lambda h: (h - h.mean(-1, keepdim=True))
                   / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + EPS)),
    "bhyt": (lambda h: bhyt(h, 2.0), lambda h: _reference_bhyt(h, 2.0, 10.0, EPS)),
    "bhyt_estimate": (lambda h: bhyt(h, 2.0, mean_square=4.0), lambda h: _reference_bhyt(h, 2.0, 10.0, EPS, 4.0)),
    "dyt": (lambda h: dyt(h, 0.5), lambda h: torch.tanh(0.5 * h)),
    "derf": (lambda h: derf(h, 0.5), lambda h: torch.erf(0.5 * h)),
    "mean_square": (mean_square, lambda h: h.square().mean(-1, keepdim=True)),
}


@given(any_dtype_tensors(), st.sampled_from(sorted(NORMS)))
def test_norm_of_any_dtype_and_shape_is_correct_or_a_clear_error(h, name):
    function, reference = NORMS[name]
    if h.dtype not in FLOATING_DTYPES:
        with pytest.raises(TypeError, match=r"^h must have a floating dtype"):
            function(h)
    elif h.ndim == 0 or h.shape[-1] == 0:
        with pytest.raises(ValueError, match=r"^h must have"):
            function(h)
    else:
        out = function(h)
        expected = reference(h.double())
        tolerance = torch.finfo(h.dtype).eps + 64 * U32
        assert out.dtype == (torch.float64 if name == "mean_square" else h.dtype)
        assert out.shape == expected.shape
        assert torch.allclose(out.double(), expected, rtol=tolerance, atol=tolerance), (out, expected)


@given(scalar_parameters(), scalar_parameters())
def test_bhyt_kappa_and_eps_are_in_range_or_rejected_by_name(kappa, eps):
    h = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64)
    kappa_ok = math.isfinite(kappa) and kappa > 0
    eps_ok = math.isfinite(eps) and eps >= 0
    if not kappa_ok:
        with pytest.raises(ValueError, match=r"^kappa must be finite and > 0"):
            bhyt(h, 2.0, kappa=kappa, eps=eps)
    elif not eps_ok:
        with pytest.raises(ValueError, match=r"^eps must be finite and ≥ 0"):
            bhyt(h, 2.0, kappa=kappa, eps=eps)
    else:
        # float64 throughout: a few ulp of float64, far inside 1e-12.
        assert torch.allclose(bhyt(h, 2.0, kappa=kappa, eps=eps), _reference_bhyt(h, 2.0, kappa, eps), rtol=1e-12, atol=0)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-10.0, max_value=10.0))
def test_any_finite_lambda_is_computed_and_a_negative_one_flips_the_sign(lam):
    # λ is trained unconstrained in the reference implementation, so every finite λ is valid:
    # tanh is odd, so BHyT_λ(h) = −BHyT_{−λ}(h), and λ = 0 gives 0.
    h = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64)
    out = bhyt(h, lam)
    # float64 throughout: relative rounding of a few ulp, except for outputs below the
    # smallest normal float64 (2.2e-308, a subnormal λ), whose rounding is absolute.
    assert torch.allclose(out, _reference_bhyt(h, lam, 10.0, EPS), rtol=1e-12, atol=1e-300)
    assert torch.equal(out, -bhyt(h, -lam))


@pytest.mark.parametrize("lam", [math.nan, math.inf, "2", True])
def test_non_finite_or_non_numeric_lambda_is_rejected_by_name(lam):
    with pytest.raises((TypeError, ValueError), match=r"^lam must be"):
        bhyt(torch.ones(3), lam)


@pytest.mark.parametrize("estimate", [torch.tensor([[1.0 + 1.0j]]), torch.tensor([[True]])])
def test_complex_or_bool_estimate_is_rejected(estimate):
    with pytest.raises(TypeError, match=r"^mean_square must be real"):
        bhyt(torch.ones(1, 3), 2.0, mean_square=estimate)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_entry_under_a_supplied_estimate_makes_its_whole_token_nan(bad):
    # The documented behaviour (norms module docstring; README "Numerics you can rely on"):
    # the per-token scale max|h_i| is a statistic of the whole token, so one NaN/Inf in a
    # token makes that token NaN, with or without a supplied M; other tokens are untouched.
    h = torch.tensor([[1.0, 2.0, 3.0], [1.0, bad, 3.0]])
    out = bhyt(h, 2.0, mean_square=torch.tensor([[1.0], [1.0]]))
    assert torch.isnan(out[1]).all()
    assert torch.equal(out[0], bhyt(h[:1], 2.0, mean_square=torch.tensor([[1.0]]))[0])


# --- the command line: every bad option is one line on stderr and exit code 2 ----------

CHOICE_VALUES = {
    "--scheme": SCHEMES, "--schemes": SCHEMES, "--estimator": tuple(ESTIMATORS), "--estimators": tuple(ESTIMATORS),
    "--kappa-schedule": tuple(KAPPA_SCHEDULES), "--dtype": DTYPES, "--statistics": STATISTICS,
    "--attention": ("uniform_causal", "uniform"), "--dtypes": DTYPES,
}


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """An existing directory and an existing regular file for the output placeholders."""
    folder = tmp_path_factory.mktemp("outputs")
    (folder / "file").write_text("not a directory")
    return folder


def concrete(argv: list[str], places: Path) -> list[str]:
    return [arg.replace("<directory>", str(places)).replace("<file>", str(places / "file")) for arg in argv]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``cli.main(argv)`` in process, with its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


@given(invalid_command_lines(CHOICE_VALUES))
def test_invalid_option_is_one_line_on_stderr_and_exit_2_before_any_work(places, case):
    command, option, argv = case
    code, out, err = run_cli(concrete(argv, places))
    assert code == 2, (argv, err)
    assert out == "", "nothing may run before the options are validated"
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"bhyt-theory {command}: error: ") and "Traceback" not in err
    assert option in err or option == "--seeds" or "StackConfig" in err or "outside the configuration" in err, err


@pytest.mark.parametrize("changes, message", [
    (["--width", "30", "--heads", "4"], "width 30 is not a multiple of heads 4"),
    (["--heads", "4", "--kv-heads", "3"], "kv_heads"),
    (["--scheme", "rmsnorm", "--lam-final", "1"], "BHyT schemes only"),
])
@pytest.mark.parametrize("command", ["trace", "sweep", "variance", "jacobian", "meanfield"])
def test_inconsistent_configuration_is_one_line_and_exit_2(command, changes, message):
    code, out, err = run_cli([command, *CLI_BASES[command], *changes])
    assert (code, out, err.count("\n")) == (2, "", 1) and message in err, err


def test_help_lists_the_allowed_values_of_every_choice_option():
    for command, names in {"trace": ("--scheme", "--estimator", "--kappa-schedule", "--dtype"),
                           "sweep": ("--statistics",), "variance": ("--estimators",),
                           "jacobian": ("--schemes",), "meanfield": ("--attention",)}.items():
        code, out, _ = run_cli([command, "--help"])
        assert code == 0
        flat = " ".join(out.split())
        for option in names:
            listed = "one of: " + ", ".join(CHOICE_VALUES[option])
            assert listed in flat, (command, option)


@pytest.mark.parametrize("command, saved", [
    (["sweep", *CLI_BASES["sweep"][:-2], "--cache-dir", "<directory>"], "saved and rerunning the same command resumes"),
    (["sweep", *CLI_BASES["sweep"]], "keeps no partial results"),
    (["trace", *CLI_BASES["trace"]], "keeps no partial results"),
])
def test_ctrl_c_is_one_line_saying_what_was_saved_and_exit_130(places, monkeypatch, command, saved):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(montecarlo, "stream_trace", interrupted)
    monkeypatch.setattr(model.Stack, "trace", interrupted)
    code, _, err = run_cli(concrete(command, places))
    assert code == 130 and err.count("\n") == 1 and saved in err, err
    if "--cache-dir" in command:
        assert str(places) in err


def test_closed_stdout_ends_quietly(monkeypatch):
    def closed(*args, **kwargs):
        raise BrokenPipeError

    monkeypatch.setattr(init_regime, "show", closed)
    code, _, err = run_cli(["trace", *CLI_BASES["trace"]])
    assert (code, err) == (141, "")


def test_sweep_prints_an_excerpt_proportionate_to_its_size(tmp_path):
    # 2 schemes × 2 depths: the summary has 2 · (2 + 16) · 2 sublayers = 72 rows per
    # statistic; the terminal gets 3 layers per configuration, the file every row.
    summary_csv = tmp_path / "summary.csv"
    code, out, _ = run_cli(["sweep", "--scheme", "rmsnorm", "bhyt", "--depth", "2", "16", "--width", "8", "--heads", "2",
                            "--seq-len", "4", "--seeds", "0", "1", "--no-cache", "--no-progress",
                            "--summary-csv", str(summary_csv)])
    assert code == 0
    assert len(pd.read_csv(summary_csv)) == 2 * (2 + 16) * 2 * 2  # configurations' layers × sublayers × statistics
    lines = out.splitlines()
    # header, column names, index names, 2 configurations × (2 + 3) distinct layers picked, footnote
    assert len(lines) == 3 + 2 * (2 + 3) + 1, out
    assert lines[-1].startswith("10 of 72 rows shown")


@pytest.mark.parametrize("option", ["--csv", "--json"])
def test_output_in_an_unwritable_folder_is_one_line_and_exit_2(tmp_path, monkeypatch, option):
    # Tests may run as root, for whom every folder is writable: the permission answer is
    # the operating system's (os.access), so it is the one thing replaced here.
    monkeypatch.setattr(options.os, "access", lambda path, mode: False)
    code, out, err = run_cli(["trace", *CLI_BASES["trace"], option, str(tmp_path / "missing" / "t.csv")])
    assert (code, out, err.count("\n")) == (2, "", 1) and f"cannot write in {tmp_path}" in err, err
