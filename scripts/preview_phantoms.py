"""Render procedural phantoms next to BrainWeb reference slices: docs/images/phantoms_vs_brainweb.png.

Rows 1-2: BrainWeb reference slices; rows 3-5: procedural phantoms sorted by axial level (point-sampled,
as used by default); row 6: the first procedural phantoms again with partial volume (supersample=4);
row 7: row 4 after the Dirichlet tissue-concentration perturbation used for training pairs;
rows 8-9: random label-field phantoms (phantoms/label_fields.py), the other half of the `mixed` training source.
All panels share one grey scale so activity levels can be compared.

Also docs/images/procedural_levels_256.png: activity and tissue classes of one phantom per level at 256×256.

Usage: python scripts/preview_phantoms.py [--brainweb PATH] [--out PATH] [--levels-out PATH] [--seed N]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from petdiff.phantoms import CLASS_NAMES, PhantomConfig, load_brainweb, perturb_concentrations, procedural_phantoms
from petdiff.phantoms.label_fields import label_field_phantoms
from petdiff.utils.io import atomic_write

REPO = Path(__file__).resolve().parents[1]
BRAINWEB_SLICES = (5, 30, 55, 80, 105, 130, 150, 170, 190, 215, 240, 265)
COLUMNS = 6
VMAX = 10.0
ALPHA = 10.0


def render(brainweb: torch.Tensor, seed: int, resolution: int) -> bytes:
    """The comparison grid as PNG bytes."""
    n_proc = 3 * COLUMNS
    proc = procedural_phantoms(n_proc, resolution, generator=seed)
    pv = procedural_phantoms(n_proc, resolution, generator=seed, supersample=4)
    order = torch.argsort(proc.levels)
    panels = [(brainweb[k], f"BrainWeb slice {s}") for k, s in enumerate(BRAINWEB_SLICES)]
    panels += [(proc.activity[int(i), 0], f"procedural, level {float(proc.levels[i]):.2f}") for i in order]
    panels += [(pv.activity[int(i), 0], f"partial volume, level {float(pv.levels[i]):.2f}") for i in order[:COLUMNS]]
    mid = order[-2 * COLUMNS : -COLUMNS]
    perturbed = perturb_concentrations(proc.labels[mid], proc.concentrations[mid], ALPHA, generator=seed)
    panels += [
        (perturbed[k, 0], f"perturbed α={ALPHA:g}, level {float(proc.levels[i]):.2f}") for k, i in enumerate(mid)
    ]
    fields = label_field_phantoms(2 * COLUMNS, resolution, generator=seed)
    panels += [(fields.activity[k, 0], "label field" + (" (partial volume)" if len(torch.unique(fields.activity[k]))
                                                        > 16 else "")) for k in range(2 * COLUMNS)]
    rows = len(panels) // COLUMNS
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(2.1 * COLUMNS, 2.25 * rows))
    for ax, (image, title) in zip(axes.flat, panels):
        ax.imshow(image, cmap="gray", vmin=0, vmax=VMAX, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(
        f"rows 1-2: BrainWeb reference (64×64); rows 3-5: procedural phantoms (seed {seed}) by axial level; "
        f"row 6: partial volume (supersample=4);\nrow 7: row 4 after Dirichlet tissue perturbation (α={ALPHA:g}); "
        "rows 8-9: random label-field phantoms (half of the 'mixed' training source). "
        f"Grey scale 0-{VMAX:g}.",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def render_levels(seed: int, resolution: int = 256) -> bytes:
    """Activity and tissue labels of one phantom per axial level at high resolution, as PNG bytes."""
    levels = (0.1, 0.3, 0.45, 0.55, 0.7, 0.9)
    fig, axes = plt.subplots(2, len(levels), figsize=(2.6 * len(levels), 5.6))
    for j, level in enumerate(levels):
        ph = procedural_phantoms(1, resolution, generator=seed + j, config=PhantomConfig(level=(level, level)))
        axes[0, j].imshow(ph.activity[0, 0], cmap="gray", vmin=0, vmax=VMAX)
        axes[0, j].set_title(f"activity, level {level:.2f}", fontsize=8)
        axes[1, j].imshow(ph.labels[0, 0], cmap="tab10", vmin=-0.5, vmax=9.5, interpolation="nearest")
        axes[1, j].set_title("tissue classes", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    names = ", ".join(f"{k}={n}" for k, n in enumerate(CLASS_NAMES))
    fig.suptitle(f"procedural phantoms at {resolution}×{resolution} (classes: {names})", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=70)
    plt.close(fig)
    return buf.getvalue()


def main() -> None:
    """Parse arguments, render the comparison grid and write it atomically."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brainweb", default=str(REPO.parent / "shared/data/brainweb_subject_infer_64.npz"))
    parser.add_argument("--out", default=str(REPO / "docs/images/phantoms_vs_brainweb.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels-out", default=str(REPO / "docs/images/procedural_levels_256.png"))
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()
    brainweb = load_brainweb(args.brainweb)[list(BRAINWEB_SLICES), 0]
    with atomic_write(args.out) as f:
        f.write(render(brainweb, args.seed, args.resolution))
    with atomic_write(args.levels_out) as f:
        f.write(render_levels(args.seed))
    print(args.out, args.levels_out)


if __name__ == "__main__":
    main()
