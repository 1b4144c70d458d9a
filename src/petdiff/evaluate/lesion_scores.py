"""How far each method moves the lesion numbers: SUVmax and MTV of the phantoms' hot lesions against the truth.

Lesions are the connected components (8-neighbourhood) of the "hot_lesion" region of each slice's labels; each is
measured with `petdiff.evaluate.lesions` on every method's image and on the true activity (same mask, same
definitions, `voxel_size` mm), and the relative error (method − truth) / truth of max and MTV is summarised over
all lesions: mean (bias), mean absolute and count.
"""

from __future__ import annotations

import numpy as np
import torch

from petdiff.evaluate.lesions import lesion_numbers

HOT = "hot_lesion"
SCORED = ("max", "mtv_ml")


def hot_lesions(regions: torch.Tensor | None, region_names: tuple[str, ...]) -> list[tuple[int, np.ndarray]]:
    """(slice index, (1, H, W) boolean mask) of every connected hot lesion."""
    from skimage.measure import label

    if regions is None or HOT not in region_names:
        return []
    hot = (regions[:, 0] == region_names.index(HOT)).cpu().numpy()
    found = []
    for i, plane in enumerate(hot):
        components = label(plane, connectivity=2)
        found += [(i, (components == k)[None]) for k in range(1, int(components.max()) + 1)]
    return found


def lesion_errors(images: dict[str, torch.Tensor], truth: torch.Tensor, regions: torch.Tensor | None,
                  region_names: tuple[str, ...], voxel_size: tuple[float, float, float] = (4.0, 4.0, 4.0)
                  ) -> dict[str, dict] | None:
    """Per method {"n", "max": {"bias", "mean_abs"}, "mtv_ml": {…}} of relative errors; None without lesions."""
    lesions = hot_lesions(regions, region_names)
    if not lesions:
        return None
    true = truth[:, 0].cpu().numpy().astype(np.float64)
    reference = [lesion_numbers(true[i][None], mask, voxel_size) for i, mask in lesions]
    out = {}
    for name, image in images.items():
        x = image[:, 0].detach().cpu().numpy().astype(np.float64)
        errors = {f: [] for f in SCORED}
        for (i, mask), ref in zip(lesions, reference):
            numbers = lesion_numbers(x[i][None], mask, voxel_size)
            for f in SCORED:
                if np.isfinite(getattr(ref, f)) and getattr(ref, f) > 0 and np.isfinite(getattr(numbers, f)):
                    errors[f].append((getattr(numbers, f) - getattr(ref, f)) / getattr(ref, f))
        out[name] = {"n": len(lesions), **{f: {"bias": float(np.mean(e)) if e else None,
                                               "mean_abs": float(np.mean(np.abs(e))) if e else None}
                                           for f, e in errors.items()}}
    return out
