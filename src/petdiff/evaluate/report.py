"""Report outputs: example panels, PSNR-vs-dose plot (PNG bytes, matplotlib without pyplot) and markdown tables."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

METHOD_LABELS: dict[str, str] = {
    "low_dose_mlem": "low-dose MLEM",
    "early_stop_mlem": "early-stopped MLEM",
    "post_filter": "MLEM + Gaussian filter",
    "full_dose_mlem": "full-dose MLEM",
    "noiseless_mlem": "noiseless MLEM",
    "regression_mean": "regression mean (supervised UNet)",
    "posterior_mean": "posterior mean",
}
# (key in the summary, column header, digits)
IMAGE_COLUMNS: tuple[tuple[str, str, int], ...] = (("psnr", "PSNR dB", 2), ("ssim", "SSIM", 3), ("nrmse", "NRMSE", 3))
ACTIVITY_CMAP, STD_CMAP, ERROR_CMAP = "inferno", "viridis", "RdBu_r"


def _png(fig) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def panel_figure(
    columns: Sequence[tuple[str, np.ndarray, str]],
    title: str = "",
    units: str = "counts / pixel",
    ncols: int | None = None,
    dpi: int = 110,
    vmax: float | None = None,
) -> bytes:
    """Labelled images with colour bars, `ncols` per row (default: one row); kind 'activity' panels share one
    0…max scale set by the first two (truth, full dose) unless `vmax` is given (a display window, as a PET viewer's),
    'std' and 'error' (symmetric, diverging) have their own."""
    from matplotlib.figure import Figure

    activity = [img for _, img, kind in columns if kind == "activity"]
    # the reference images set the scale: the first (the truth) and the 99.5th percentile of the second (full
    # dose); brighter pixels of the other images saturate rather than hiding the anatomy of all of them
    if vmax is None:
        vmax = max([float(np.max(activity[0]))] + [float(np.percentile(img, 99.5)) for img in activity[1:2]]) or 1.0
    n = len(columns)
    ncols = min(ncols or n, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(2.9 * ncols, 0.5 + 2.6 * nrows), dpi=dpi, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    for ax, (label, img, kind) in zip(axes, columns):
        if kind == "activity":
            shown = ax.imshow(img, cmap=ACTIVITY_CMAP, vmin=0.0, vmax=vmax)
        elif kind == "error":
            limit = float(np.max(np.abs(img))) or 1.0
            shown = ax.imshow(img, cmap=ERROR_CMAP, vmin=-limit, vmax=limit)
        else:
            shown = ax.imshow(img, cmap=STD_CMAP, vmin=0.0)
        bar = fig.colorbar(shown, ax=ax, shrink=0.78, pad=0.02)
        bar.ax.tick_params(labelsize=7)
        ax.set_title(label, fontsize=8.5)
        ax.set_axis_off()
    if title:
        fig.suptitle(f"{title}\ncolour bars: {units}", fontsize=9.5)
    return _png(fig)


def dose_figure(
    fractions: Sequence[float], psnr: Mapping[str, Sequence[tuple[float, float]]], dpi: int = 110
) -> bytes:
    """Mean PSNR vs truth (± 1 s.e.m. over slices) against the dose fraction, one line per method."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    x = np.asarray(fractions, dtype=float)
    for name, values in psnr.items():
        mean = np.array([v[0] for v in values])
        sem = np.nan_to_num(np.array([v[1] for v in values]))
        style = "--" if name in ("full_dose_mlem", "noiseless_mlem") else "-"
        ax.errorbar(x, mean, yerr=sem, fmt=f"o{style}", ms=4, capsize=3, label=METHOD_LABELS.get(name, name))
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{f:g}" for f in x])
    ax.minorticks_off()
    ax.set_xlabel("dose fraction of the low-dose scan")
    ax.set_ylabel("PSNR vs truth (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def _cell(stat: Mapping[str, float] | None, digits: int) -> str:
    """'mean ± sem' (or '—' when missing / not finite)."""
    if not stat or not math.isfinite(stat.get("mean", float("nan"))):
        return "—"
    sem = stat.get("sem", float("nan"))
    return f"{stat['mean']:.{digits}f}" + (f" ± {sem:.{digits}f}" if math.isfinite(sem) else "")


def metrics_table(summary: Mapping[str, dict], labels: Mapping[str, str] | None = None) -> str:
    """Markdown table: method × {PSNR, paired PSNR gain over low-dose MLEM, SSIM, NRMSE} vs truth and {PSNR, SSIM,
    NRMSE} vs full dose (mean ± s.e.m. over slices)."""
    labels = {**METHOD_LABELS, **(labels or {})}
    head = ["method"] + [f"{h} vs {ref}" for ref in ("truth", "full dose") for _, h, _ in IMAGE_COLUMNS]
    head.insert(2, "ΔPSNR vs low dose (paired)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, entry in summary.items():
        cells = [labels.get(name, name)]
        for ref in ("vs_truth", "vs_full_dose"):
            cells += [_cell(entry.get(ref, {}).get(key), d) for key, _, d in IMAGE_COLUMNS]
        cells.insert(2, _cell(entry.get("vs_truth", {}).get("psnr_gain"), 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def region_table(summary: Mapping[str, dict], labels: Mapping[str, str] | None = None) -> str:
    """Markdown table: method × region {bias %, noise %} (mean ± s.e.m. over the slices that have the region)."""
    labels = {**METHOD_LABELS, **(labels or {})}
    regions = next((list(e["regions"]) for e in summary.values() if "regions" in e), [])
    # regions absent from every slice (no lesion drawn, say) would only add empty columns
    regions = [
        r for r in regions if any(e.get("regions", {}).get(r, {}).get("noise", {}).get("n") for e in summary.values())
    ]
    if not regions:
        return ""
    head = ["method"] + [f"{r} {q}" for r in regions for q in ("bias %", "noise %")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, entry in summary.items():
        cells = [labels.get(name, name)]
        for r in regions:
            for q in ("bias", "noise"):
                stat = entry.get("regions", {}).get(r, {}).get(q)
                pct = None if stat is None else {**stat, "mean": 100 * stat["mean"], "sem": 100 * stat["sem"]}
                cells.append(_cell(pct, 1))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def calibration_table(calib: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown table: reference × observed (expected) coverage of the 50 % / 90 % intervals and the z spread."""
    head = ["reference", "Gaussian 50 %", "Gaussian 90 %", "samples 50 %", "samples 90 %", "z mean", "z std"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pair(c: Mapping[str, float], key: str) -> str:
        if key not in c:
            return "—"
        return f"{100 * c[key]:.1f} % ({100 * c[key + '_expected']:.1f})"

    for ref, c in calib.items():
        z = f"{c['z_std']:.2f} ({c['z_std_expected']:.2f})"
        cells = [ref.replace("vs_", "").replace("_", " "), pair(c, "gaussian_0.5"), pair(c, "gaussian_0.9"),
                 pair(c, "samples_0.5"), pair(c, "samples_0.9"), f"{c['z_mean']:.2f}", z]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
