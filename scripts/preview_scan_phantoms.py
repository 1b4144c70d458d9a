"""Render the slab phantoms of the scan simulator: docs/images/scan_phantoms.png.

Row 1: whole-body slabs, one per region (neck, thorax, abdomen, pelvis), 128×128 at 4 mm (512 mm field of view).
Row 2: whole-body slabs at 1.5–2.5 mm: the field of view shows a part of the body.
Row 3: the three slices of two body slabs (3 mm apart) and their tissue classes.
Row 4: brain slabs (FDG) at 1.5, 2.0 and 2.5 mm, and the three slices of one slab.
Row 5: amyloid-like and striatum-only brains, tissue classes, and label-field slabs.
Lesions are outlined in red (hot) and blue (cold). Body panels: SUV 0–6; brain panels: SUV 0 to their maximum.

Usage: python scripts/preview_scan_phantoms.py [--out PATH] [--seed N]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from petdiff.phantoms import LesionConfig, body_slabs, brain_slabs
from petdiff.phantoms.scan_slabs import field_slabs
from petdiff.phantoms.slabs import Slabs
from petdiff.utils.io import atomic_write

REPO = Path(__file__).resolve().parents[1]
COLUMNS = 6
BODY_VMAX = 6.0
GRID = 128


def _panel(slabs: Slabs, i: int, j: int | None = None, title: str = "", vmax: float | None = None) -> dict:
    """One image panel: slice j (default the centre) of slab i, with its lesions."""
    j = slabs.context if j is None else j
    image = slabs.activity[i, j]
    top = vmax if vmax is not None else float(image.max())
    hot = slabs.lesion_contrast[i] > 1 if slabs.lesion_contrast.shape[1] else torch.zeros(0, dtype=torch.bool)
    return {"image": image, "vmax": top, "title": title, "lesions": slabs.lesions[i, j], "hot": hot, "cmap": "gray_r"}


def _labels_panel(slabs: Slabs, i: int, title: str) -> dict:
    """The tissue classes of slab i's centre slice."""
    lab = slabs.labels[i, slabs.context].float()
    return {"image": lab, "vmax": float(len(slabs.class_names)), "title": title, "cmap": "tab20", "lesions": None}


def panels(seed: int) -> list[dict]:
    """Every panel of the figure, in reading order."""
    out: list[dict] = []
    lesions = LesionConfig(count=(1, 3))
    for region in ("neck", "thorax", "thorax", "abdomen", "abdomen", "pelvis"):
        s = body_slabs(1, GRID, 4.0, 3.0, 1, generator=seed + len(out), regions=(region,), lesions=lesions)
        out.append(_panel(s, 0, title=f"body {region}, 4.0 mm", vmax=BODY_VMAX))
    for pixel, region in ((1.5, "thorax"), (2.0, "abdomen"), (2.5, "pelvis"), (1.5, "neck"), (2.0, "thorax")):
        s = body_slabs(1, GRID, pixel, 3.0, 1, generator=seed + len(out), regions=(region,), lesions=lesions)
        out.append(_panel(s, 0, title=f"body {region}, {pixel} mm", vmax=BODY_VMAX))
    s = body_slabs(1, GRID, 3.0, 3.0, 1, generator=seed + len(out), regions=("abdomen",), lesions=lesions)
    out.append(_panel(s, 0, title="body abdomen, 3.0 mm", vmax=BODY_VMAX))
    slab = body_slabs(2, GRID, 3.0, 3.0, 1, generator=seed + 100, regions=("thorax", "abdomen"), lesions=lesions)
    for j in range(3):
        out.append(_panel(slab, 0, j, title=f"body slab slice {j - 1:+d} (3 mm)", vmax=BODY_VMAX))
    out.append(_labels_panel(slab, 0, "tissue classes"))
    out.append(_panel(slab, 1, 0, title="2nd slab slice -1", vmax=BODY_VMAX))
    out.append(_panel(slab, 1, 2, title="2nd slab slice +1", vmax=BODY_VMAX))
    for pixel in (1.5, 2.0, 2.5):
        s = brain_slabs(1, GRID, pixel, 2.0, 1, generator=seed + len(out), tracers=(1.0, 0.0, 0.0), lesions=lesions)
        out.append(_panel(s, 0, title=f"brain FDG, {pixel} mm"))
    brain = brain_slabs(1, GRID, 2.0, 2.5, 1, generator=seed + 200, tracers=(1.0, 0.0, 0.0), lesions=lesions)
    for j in range(3):
        out.append(_panel(brain, 0, j, title=f"brain slab slice {j - 1:+d} (2.5 mm)"))
    for tracer, name in (((0.0, 1.0, 0.0), "amyloid-like"), ((0.0, 0.0, 1.0), "striatum-only")):
        s = brain_slabs(1, GRID, 2.0, 2.0, 1, generator=seed + len(out), tracers=tracer, lesions=lesions)
        out.append(_panel(s, 0, title=f"brain {name}, 2.0 mm"))
    out.append(_labels_panel(brain, 0, "brain tissue classes"))
    g = torch.Generator().manual_seed(seed)
    fields = field_slabs(3, GRID, torch.full((3,), 2.0), torch.full((3,), 2.0), 1, g, lesions)
    out.extend(_panel(fields, i, title="label field slab") for i in range(3))
    return out


def render(seed: int) -> bytes:
    """The figure as PNG bytes."""
    items = panels(seed)
    rows = -(-len(items) // COLUMNS)
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(2.4 * COLUMNS, 2.5 * rows))
    for ax, item in zip(axes.flat, items):
        ax.imshow(item["image"], cmap=item["cmap"], vmin=0, vmax=item["vmax"], interpolation="nearest")
        if item["lesions"] is not None and int(item["lesions"].max()) > 0:
            for k in range(1, int(item["lesions"].max()) + 1):
                mask = (item["lesions"] == k).float()
                if mask.sum() > 0:
                    colour = "red" if k - 1 < len(item["hot"]) and bool(item["hot"][k - 1]) else "blue"
                    ax.contour(mask, levels=[0.5], colors=colour, linewidths=0.6)
        ax.set_title(item["title"], fontsize=8)
        ax.axis("off")
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    fig.suptitle(
        f"Slab phantoms of the scan simulator (seed {seed}), 128×128; body SUV 0–{BODY_VMAX:g}, brain SUV 0–max; "
        "lesions outlined (red hot, blue cold)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def main() -> None:
    """Write the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "scan_phantoms.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with atomic_write(args.out) as f:
        f.write(render(args.seed))
    print(args.out)


if __name__ == "__main__":
    main()
