"""The drawing primitives every figure of the report shares: one style per scheme, the
figure file's resolution, seed bands, the legend placement and the layer × position
ratio heat map (``figures`` draws the studies with them)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.colors import TwoSlopeNorm

Tables = Mapping[str, pd.DataFrame]

# Schemes that compute (nearly) the same numbers at initialisation get the same
# colour family but different line styles and markers, so coinciding curves stay
# distinguishable: dyt/derf, and bhyt/bhytline (identical by construction)/bhytstar.
SCHEME_STYLES = {
    "rmsnorm": dict(color="#1f77b4", linestyle="-", marker=None, linewidth=2.0),
    "periln": dict(color="#ff7f0e", linestyle="-", marker=None, linewidth=1.6),
    "lns": dict(color="#2ca02c", linestyle="-", marker=None, linewidth=1.6),
    "dyt": dict(color="#d62728", linestyle="-", marker=None, linewidth=3.0, alpha=0.6),
    "derf": dict(color="#8c1515", linestyle="--", marker="s", markersize=4, linewidth=1.2),
    "bhyt": dict(color="#9467bd", linestyle="-", marker=None, linewidth=4.0, alpha=0.45),
    "bhytline": dict(color="#4b2a7b", linestyle="--", marker="o", markersize=4, linewidth=1.4),
    "bhytstar": dict(color="#e377c2", linestyle=":", marker="x", markersize=5, linewidth=1.8),
    "bhytc": dict(color="#17becf", linestyle="-.", marker="^", markersize=4, linewidth=1.6),
}
DPI = 110


def style(scheme: str, n_points: int = 0) -> dict:
    """Line style of ``scheme``; markers thinned to about 12 per curve."""
    chosen = dict(SCHEME_STYLES.get(scheme, {}))
    if chosen.get("marker") and n_points:
        chosen["markevery"] = max(1, n_points // 12)
    return chosen


def save(figure, path: Path | None):
    """Write ``figure`` to ``path`` and close it; with ``path=None`` return it (for a notebook)."""
    if path is None:
        return figure
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return None


def band(axis, x, low, high, scheme: str) -> None:
    axis.fill_between(x, low, high, color=SCHEME_STYLES.get(scheme, {}).get("color"), alpha=0.15, linewidth=0)


def legend_right(axis, **kwargs) -> None:
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, **kwargs)


def ratio_heat_map(axis, table: pd.DataFrame, norm, title: str):
    """One layer × position heat map of ``table``'s ``ratio`` column, titled with its mean and max |r − 1|."""
    grid = table.pivot(index="layer", columns="position", values="ratio")
    image = axis.imshow(grid.to_numpy(), aspect="auto", cmap="RdBu", norm=norm, interpolation="nearest",
                        extent=(-0.5, grid.shape[1] - 0.5, grid.shape[0] - 0.5, -0.5))
    axis.set_yticks(range(len(grid.index)), [str(v) for v in grid.index])
    error = (grid - 1).abs().to_numpy()
    axis.set_title(f"{title}\nmean |r−1| {error.mean():.3f}, max {error.max():.3f}", fontsize=9)
    axis.set_xlabel("position t")
    axis.set_ylabel("layer")
    return image


def ratio_norm(ratios: pd.Series) -> TwoSlopeNorm:
    """A colour range symmetric around 1, wide enough for the largest error (at least ±5 %)."""
    spread = max(0.05, float((ratios - 1).abs().max()))
    return TwoSlopeNorm(vmin=1 - spread, vcenter=1.0, vmax=1 + spread)
