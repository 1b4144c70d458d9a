"""Tissue regions for the per-region metrics: grey / white matter of BrainWeb-format slices, procedural classes.

BrainWeb reference file (`brainweb_subject_infer_64.npz`, 281 slices of one subject, axial and coronal):
every slice has its own random tissue concentrations quantised to the integers 0…12 (Dirichlet-perturbed,
science.md §4), so there is no fixed level → tissue table. Level 0 is background + CSF; grey and white matter
often receive the same integer (merged), and in 138 of the 157 slices where they are separable the white
matter is the *hotter* one (median white/grey ratio 2), i.e. the file is not FDG-like (grey ≈ 4× white).
The mapping is therefore anatomical, per slice: among the levels that cover ≥ 10 % of the head and are not
a rim (scalp / skull / fat: most of their pixels within 4 px of the head edge), the two largest are the brain
tissues; the one lying deeper (mean depth / max depth) is white matter, the shallower one (the cortical
ribbon) grey matter. Slices with fewer than two such levels, or whose two levels lie at about the same depth
(relative depth gap < 0.05), get no grey/white region (their region metrics are NaN and left out of means).
"""

from __future__ import annotations

import torch

from petdiff.evaluate.masks import depth, head_mask
from petdiff.utils.validation import check_image_batch, check_non_negative

BRAINWEB_REGION_NAMES: tuple[str, ...] = ("other", "grey_matter", "white_matter")
OTHER, GREY, WHITE = range(3)

# procedural classes worth a bias/noise figure (background, scalp, skull and CSF are not brain tissue)
PROCEDURAL_REGIONS: tuple[str, ...] = (
    "grey_matter", "white_matter", "deep_grey", "cerebellum", "hot_lesion", "cold_lesion",
)


def _grey_white_levels(
    slice_: torch.Tensor, head: torch.Tensor, dist: torch.Tensor, min_area: float, rim_px: int, min_gap: float
) -> tuple[float, float] | None:
    """(grey level, white level) of one (H, W) slice, or None when they cannot be told apart."""
    head_area = int(head.sum())
    max_depth = float(dist.max())
    if head_area == 0 or max_depth == 0:
        return None
    candidates = []  # (area, relative depth, level)
    for level in torch.unique(slice_[slice_ > 0]).tolist():
        region = slice_ == level
        area = int(region.sum())
        d = dist[region].double()
        rim = float((d <= rim_px).double().mean())
        if area >= min_area * head_area and rim < 0.5:
            candidates.append((area, float(d.mean()) / max_depth, level))
    if len(candidates) < 2:
        return None
    (_, d1, l1), (_, d2, l2) = sorted(candidates, reverse=True)[:2]
    if abs(d1 - d2) < min_gap:
        return None
    return (l1, l2) if d1 < d2 else (l2, l1)


def brainweb_regions(
    truth: torch.Tensor, min_area: float = 0.1, rim_px: int = 4, min_gap: float = 0.05
) -> torch.Tensor:
    """Labels (B, 1, H, W) int64 in BRAINWEB_REGION_NAMES: 1 = grey, 2 = white matter, 0 = other (see module doc)."""
    check_image_batch("truth", truth)
    check_non_negative("truth", truth)
    head = head_mask(truth)
    dist = depth(head)
    labels = torch.zeros(truth.shape, dtype=torch.int64, device=truth.device)
    for i in range(truth.shape[0]):
        found = _grey_white_levels(truth[i, 0], head[i, 0], dist[i, 0], min_area, rim_px, min_gap)
        if found is not None:
            labels[i, 0][truth[i, 0] == found[0]] = GREY
            labels[i, 0][truth[i, 0] == found[1]] = WHITE
    return labels


def procedural_regions(labels: torch.Tensor, class_names: tuple[str, ...]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Relabel procedural classes to ("other", *PROCEDURAL_REGIONS); other classes become 0."""
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.ndim != 4:
        raise ValueError(f"labels: expected an int64 tensor (B, 1, H, W), found {getattr(labels, 'shape', labels)}")
    lookup = torch.zeros(len(class_names), dtype=torch.int64, device=labels.device)
    for k, name in enumerate(PROCEDURAL_REGIONS, start=1):
        if name in class_names:
            lookup[class_names.index(name)] = k
    return lookup[labels], ("other", *PROCEDURAL_REGIONS)
