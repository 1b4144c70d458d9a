"""The `enhanced.png` figure of `petdiff enhance`: low-dose input, the mean and the posterior std for a few slices."""

from __future__ import annotations

import io

import numpy as np


def panel_slices(n_slices: int, nonzero: np.ndarray | None = None, count: int = 3) -> list[int]:
    """Up to `count` slice indices spread evenly over the non-empty slices (the middle one for count = 1)."""
    candidates = np.arange(n_slices) if nonzero is None or not nonzero.any() else np.flatnonzero(nonzero)
    if len(candidates) <= count:
        return [int(i) for i in candidates]
    # centres of `count` equal parts, so a single slice is the middle one
    positions = ((np.arange(count) + 0.5) * len(candidates) / count).astype(int)
    return [int(candidates[p]) for p in positions]


def enhancement_panel(
    low_dose_full_units: np.ndarray, mean: np.ndarray, std: np.ndarray | None, slices: list[int], dpi: int = 100,
    input_title: str = "low-dose input / f", mean_title: str = "posterior mean",
) -> bytes:
    """PNG bytes of a grid: one row per slice, columns input (low / f), the mean (`mean_title`), posterior std.

    Input and mean share one grey scale (both in full-dose units); the std has its own.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    columns = [(input_title, low_dose_full_units), (mean_title, mean)]
    if std is not None:
        columns.append(("posterior std", std))
    fig = Figure(figsize=(3.2 * len(columns), 3.0 * len(slices)), dpi=dpi, layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(slices), len(columns), squeeze=False))
    for row, index in enumerate(slices):
        vmax = float(max(low_dose_full_units[index].max(), mean[index].max(), 1e-12))
        for col, (title, images) in enumerate(columns):
            ax = axes[row, col]
            is_std = std is not None and col == 2
            image = ax.imshow(
                images[index], cmap="magma" if is_std else "gray", vmin=0, vmax=None if is_std else vmax
            )
            fig.colorbar(image, ax=ax, shrink=0.8)
            ax.set_title(f"{title} [{index}]" if len(slices) > 1 else title, fontsize=9)
            ax.set_axis_off()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
