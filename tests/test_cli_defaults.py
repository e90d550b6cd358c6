"""One home for every default: a command's defaults are the library's (its dataclasses, presets and
function defaults), and for every command that takes ``--preset`` the precedence is library default <
preset < explicit option. Also ``--version`` and ``python -m bhyt_theory``."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from bhyt_theory import __version__
from bhyt_theory.cli.common import command_configs
from bhyt_theory.cli.main import build_parser, main
from bhyt_theory.experiments import (
    efficiency,
    gradients,
    jacobian,
    position,
    staleness,
    variance,
)
from bhyt_theory.experiments.growth import DEFAULT_GROWTH
from bhyt_theory.experiments.training.study import preset_config
from bhyt_theory.numerics.inputs import InputSpec
from bhyt_theory.numerics.model import PRESETS, SCHEMES, StackConfig

# The library's default configuration(s) of each command that takes --preset, written from the
# library's own objects (the configs a command runs with no option given).
LIBRARY = {
    "trace": lambda: [StackConfig()],
    "meanfield": lambda: [StackConfig()],
    "sweep": lambda: [StackConfig()],
    "growth": lambda: [StackConfig(scheme=scheme, **DEFAULT_GROWTH) for scheme in SCHEMES],
    "variance": lambda: [variance.VARIANCE_CONFIG],
    "jacobian": lambda: [jacobian.JACOBIAN_CONFIG],
    "efficiency": lambda: [efficiency.DEFAULT_EFFICIENCY],
    "gradients": lambda: [gradients.GRADIENT_CONFIG],
    "staleness": lambda: [staleness.STALENESS_CONFIG],
    "position": lambda: [position.POSITION_CONFIG],
    "train": lambda: [preset_config("default").stack],
}
# Fields an experiment fixes (not defaults: the experiment is defined by them).
FIXED = {"staleness": ("scheme",), "position": ("scheme", "depth")}
PRESET = "llama-1b"
# Explicit options: every derived field given too, so the expectation needs no derivation rule.
EXPLICIT = {"width": 256, "heads": 8, "kv_heads": 4, "mlp_width": 512, "seq_len": 16}


def preset_commands() -> set[str]:
    """Every command (by its own name, not an alias) whose parser has a --preset option."""
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name for name, parser in commands.choices.items()
            if parser.prog.endswith(" " + name) and any("--preset" in a.option_strings for a in parser._actions)}


def configs(command: str, *options: str) -> list[StackConfig]:
    return command_configs(build_parser().parse_args([command, *options]))


def expected(command: str, *layers: dict) -> list[StackConfig]:
    """The library configs with ``layers`` applied in order, then the experiment's fixed fields."""
    out = []
    for library in LIBRARY[command]():
        config = library
        for changes in layers:
            config = config.replace(**changes)
        out.append(config.replace(**{name: getattr(library, name) for name in FIXED.get(command, ())}))
    return out


def test_the_precedence_test_covers_every_command_with_a_preset():
    assert preset_commands() == set(LIBRARY)


@pytest.mark.parametrize("command", sorted(LIBRARY))
def test_no_option_gives_the_library_default(command):
    assert configs(command) == expected(command)


@pytest.mark.parametrize("command", sorted(LIBRARY))
def test_a_preset_outranks_the_library_default(command):
    """Every field the preset sets wins over the library's; the library's other fields stay."""
    assert configs(command, "--preset", PRESET) == expected(command, PRESETS[PRESET])


@pytest.mark.parametrize("command", sorted(LIBRARY))
def test_an_explicit_option_outranks_the_preset(command):
    options = [f"--{name.replace('_', '-')}={value}" for name, value in EXPLICIT.items()]
    assert configs(command, "--preset", PRESET, *options) == expected(command, PRESETS[PRESET], EXPLICIT)


def test_gradients_with_the_1b_preset_runs_the_1b_shape():
    """The command's own defaults (depth 64, width 64 …) used to outrank the preset: width 64, 32 heads."""
    (config,) = configs("gradients", "--preset", "llama-1b")
    assert (config.width, config.heads, config.kv_heads, config.depth) == (2048, 32, 8, 16)
    assert config.width // config.heads == 64
    assert config.dtype == gradients.GRADIENT_CONFIG.dtype  # the preset does not set it


@pytest.mark.parametrize("command, study", [("gradients", gradients.gradient_study),
                                            ("staleness", staleness.staleness_study),
                                            ("position", position.peaked_attention_study)])
def test_study_inputs_default_to_the_library_input_spec(command, study):
    import inspect

    args = build_parser().parse_args([command])
    library = inspect.signature(study).parameters["inputs"].default
    assert isinstance(library, InputSpec)
    assert InputSpec(args.batch, std=args.input_std) == library
    assert library.std == InputSpec().std


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bhyt-theory {__version__}"


def test_python_dash_m_runs_the_command_line():
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "bhyt_theory", "--version"], capture_output=True, text=True,
                          cwd=root, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, f"bhyt-theory {__version__}")


@pytest.mark.parametrize("command", sorted(name for name in LIBRARY if len(LIBRARY[name]()) == 1))
def test_help_names_the_default_the_command_runs_with(command):
    """`--help` of every StackConfig option states the value the command uses when it is not given."""
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    actions = {a.dest: a for a in commands.choices[command]._actions}
    (library,) = LIBRARY[command]()
    for field in ("depth", "width", "heads", "seq_len", "scheme", "lam_in", "kappa"):
        assert f"(default {getattr(library, field)}" in actions[field].help, (command, field, actions[field].help)
