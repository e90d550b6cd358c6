"""The scheme table: each normaliser one record, each block scheme one row (docs/schemes.md).

A *normaliser* record names a normaliser and builds its ``nn.Module`` for a layer.
Its two other faces live in the theory layer, keyed by the same name (numerics
may not import theory): the mean-field kernel map in
``theory.meanfield.NORM_KERNELS`` and the output bound in
``theory.bounds.NORM_OUTPUT_BOUNDS`` (tests check that every normaliser has both).

A *scheme* row says which normaliser sits before each sublayer, which after
(``None``: none, an ``nn.Identity``), by what the pre-norm output is divided
(LNS: √l, l the 1-based layer), which normaliser is the final one, and whether
the MLP-side norm is fed BHyT's estimate M₂ instead of its own reduction.
``Block``, ``Stack``, the mean field, the bounds and the tightness search read
the row; adding a scheme is adding a row to ``SCHEME_TABLE``.

References: Byun et al., arXiv 2601.09719 (BHyT); Sun et al., arXiv 2502.05795
(LNS); Kim et al., arXiv 2502.02732 (Peri-LN); Zhu et al., arXiv 2503.10622 (DyT);
arXiv 2512.10938 (Derf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from torch import nn

from .estimators import ESTIMATORS
from .norms import BHyT, Derf, DyT, LayerNorm, RMSNorm

__all__ = [
    "Normaliser",
    "NORMALISERS",
    "Scheme",
    "SCHEME_TABLE",
    "estimating_schemes",
    "scheme_row",
    "no_divisor",
    "depth_divisor",
]


@dataclass(frozen=True)
class Normaliser:
    """One normaliser: its name and how to build its module.

    ``build(config, lam, layer)`` returns the module for 0-based ``layer`` of a
    stack of ``config`` (λ is used by BHyT only); ``has_argument``: the module has
    an element-wise tanh/erf argument (``module.argument(h)``) that probes record.
    """

    name: str
    build: Callable[[object, float, int], nn.Module]
    has_argument: bool


NORMALISERS: dict[str, Normaliser] = {
    "rmsnorm": Normaliser("rmsnorm", lambda config, lam, layer: RMSNorm(config.width), False),
    "layernorm": Normaliser("layernorm", lambda config, lam, layer: LayerNorm(config.width), False),
    "dyt": Normaliser("dyt", lambda config, lam, layer: DyT(config.width, config.dyt_alpha), True),
    "derf": Normaliser("derf", lambda config, lam, layer: Derf(config.width, config.derf_alpha), True),
    "bhyt": Normaliser("bhyt", lambda config, lam, layer: BHyT(config.width, lam, config.kappa_at(layer)), True),
}


def no_divisor(layer: int) -> float:
    """The pre-norm output is not rescaled."""
    return 1.0


def depth_divisor(layer: int) -> float:
    """LNS: the pre-norm output is divided by √l, l = layer + 1 (Sun et al., arXiv 2502.05795)."""
    return math.sqrt(layer + 1)


@dataclass(frozen=True)
class Scheme:
    """One row of the scheme table.

    Attributes
    ----------
    pre_norm : str
        Normaliser before each sublayer (a key of ``NORMALISERS``).
    post_norm : str or None
        Normaliser applied to each sublayer's output before the residual add
        (Peri-LN); ``None`` for none.
    branch_divisor : callable
        ``branch_divisor(layer)`` divides the pre-norm output (0-based layer).
    final_norm : str
        Normaliser after the last block (``StackConfig.lam_final > 0`` replaces it
        by a BHyT* on schemes whose pre-norm is BHyT).
    estimates_m2 : bool
        The MLP-side norm is fed BHyT's estimate M₂ (``StackConfig.estimator``)
        instead of reducing ``h'`` itself; needs ``pre_norm == "bhyt"``.
    estimator : str or None
        The M₂ estimator the row fixes (a key of ``estimators.ESTIMATORS``); a
        ``StackConfig`` of the row takes it in place of its default "reference"
        (``None``: the config's own ``estimator``). Needs ``estimates_m2``.
    kappa_schedule : str or None
        The κ schedule the row fixes (a key of ``model.KAPPA_SCHEDULES``), taken
        in place of the config's default "constant" (``None``: the config's own).
        Needs ``pre_norm == "bhyt"``.
    """

    pre_norm: str
    post_norm: str | None = None
    branch_divisor: Callable[[int], float] = no_divisor
    final_norm: str = "rmsnorm"
    estimates_m2: bool = False
    estimator: str | None = None
    kappa_schedule: str | None = None

    def __post_init__(self) -> None:
        for role, name in (("pre_norm", self.pre_norm), ("post_norm", self.post_norm), ("final_norm", self.final_norm)):
            if name is not None and name not in NORMALISERS:
                raise ValueError(f"{role} {name!r} is not one of {tuple(NORMALISERS)}")
        if self.estimates_m2 and self.pre_norm != "bhyt":
            raise ValueError(f"estimates_m2 needs pre_norm 'bhyt', got {self.pre_norm!r}")
        if self.estimator is not None and not self.estimates_m2:
            raise ValueError(f"estimator {self.estimator!r} needs estimates_m2")
        if self.estimator is not None and self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator {self.estimator!r} is not one of {tuple(ESTIMATORS)}")
        if self.kappa_schedule is not None and self.pre_norm != "bhyt":
            raise ValueError(f"kappa_schedule needs pre_norm 'bhyt', got {self.pre_norm!r}")

    @property
    def bhyt_family(self) -> bool:
        """The pre-norm is BHyT (so λ, κ, a last-layer BHyT* and the saturation bound apply)."""
        return self.pre_norm == "bhyt"

    @property
    def has_argument(self) -> bool:
        """The pre-norm has a tanh/erf argument."""
        return NORMALISERS[self.pre_norm].has_argument


# ``bhytc`` is the toolkit's variant: the "correlation" estimator, whose per-position factor
# the mean field predicts, and a κ schedule chosen from the mean field for depth stability.
# ``bhytline`` computes the same numbers as ``bhyt``: the reference implementation
# computes bhyt's M₂ on a side CUDA stream, overlapped with attention, and
# bhytline's in sequence; that is scheduling only.
SCHEME_TABLE: dict[str, Scheme] = {
    "rmsnorm": Scheme("rmsnorm"),
    "periln": Scheme("rmsnorm", post_norm="rmsnorm"),
    "lns": Scheme("rmsnorm", branch_divisor=depth_divisor),
    "dyt": Scheme("dyt", final_norm="dyt"),
    "derf": Scheme("derf", final_norm="derf"),
    "bhyt": Scheme("bhyt", estimates_m2=True),
    "bhytline": Scheme("bhyt", estimates_m2=True),
    "bhytstar": Scheme("bhyt"),
    # BHyT with the correlation-aware M₂ and κ_l = κ·l² (docs/schemes.md §7).
    "bhytc": Scheme("bhyt", estimates_m2=True, estimator="correlation", kappa_schedule="quadratic"),
}


def scheme_row(name: str) -> Scheme:
    """The row of scheme ``name`` in ``SCHEME_TABLE`` (read at call time, so a table
    extended at run time is seen everywhere).

    Examples
    --------
    >>> scheme_row("periln").post_norm, scheme_row("lns").branch_divisor(3)
    ('rmsnorm', 2.0)
    >>> scheme_row("bhyt").estimates_m2, scheme_row("bhytstar").estimates_m2
    (True, False)
    """
    try:
        return SCHEME_TABLE[name]
    except KeyError:
        raise ValueError(f"scheme {name!r} is not one of {tuple(SCHEME_TABLE)}") from None


def estimating_schemes() -> tuple[str, ...]:
    """The schemes whose row estimates M₂ (read at call time, rows added at run time included).

    Examples
    --------
    >>> estimating_schemes()
    ('bhyt', 'bhytline', 'bhytc')
    """
    return tuple(name for name, row in SCHEME_TABLE.items() if row.estimates_m2)
