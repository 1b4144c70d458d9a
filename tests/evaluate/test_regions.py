"""Tissue regions and the reference figures on BrainWeb slices (scaling convention of evaluate.scoring)."""

from __future__ import annotations

import math

import pytest
import torch

from petdiff.evaluate.metrics import psnr, scale_to_total, ssim
from petdiff.evaluate.regions import BRAINWEB_REGION_NAMES, GREY, WHITE, brainweb_regions, procedural_regions
from petdiff.evaluate.scans import load_phantoms, select_indices, simulate_scans
from petdiff.phantoms import CLASS_NAMES
from petdiff.physics import Projector
from petdiff.recon import mlem


def layered_head(size: int = 48, grey: float = 2.0, white: float = 6.0) -> torch.Tensor:
    """A scalp ring (level 1), a CSF gap (0), a grey ring and a white core, as in a BrainWeb slice."""
    c = torch.linspace(-1, 1, size)
    r = torch.sqrt(c[None, :] ** 2 + c[:, None] ** 2)
    img = torch.zeros(size, size)
    img[(r < 0.95) & (r >= 0.88)] = 1.0
    img[(r < 0.8) & (r >= 0.5)] = grey
    img[r < 0.5] = white
    return img[None, None]


def test_brainweb_regions_find_grey_outside_white_whichever_is_hotter():
    for grey, white in ((2.0, 6.0), (8.0, 2.0)):
        truth = layered_head(grey=grey, white=white)
        labels = brainweb_regions(truth)
        assert bool((labels[truth == grey] == GREY).all())
        assert bool((labels[truth == white] == WHITE).all())
        assert bool((labels[truth == 1.0] == 0).all())  # the scalp ring is a rim, not brain


def test_brainweb_regions_leave_merged_tissue_unlabelled():
    truth = layered_head(grey=4.0, white=4.0)  # grey and white quantised to one level
    assert int(brainweb_regions(truth).count_nonzero()) == 0
    assert BRAINWEB_REGION_NAMES == ("other", "grey_matter", "white_matter")


def test_procedural_regions_map_class_names():
    labels = torch.arange(len(CLASS_NAMES)).view(1, 1, 1, -1)
    regions, names = procedural_regions(labels, CLASS_NAMES)
    assert names[0] == "other"
    for k, name in enumerate(CLASS_NAMES):
        expected = names.index(name) if name in names else 0
        assert int(regions[0, 0, 0, k]) == expected
    assert int(regions[0, 0, 0, CLASS_NAMES.index("skull")]) == 0


def test_select_indices():
    assert select_indices(10) == list(range(10))
    assert select_indices(10, slices=(2, 4)) == [2, 3, 4]
    assert select_indices(281, 4) == [35, 105, 175, 245]
    with pytest.raises(ValueError, match="slices"):
        select_indices(10, slices=(5, 12))


def test_reference_figures_on_brainweb_slices(brainweb_path):
    """Full dose 23.75 dB / SSIM 0.917, 25 % dose 20.5 dB / 0.865, noiseless 26.0 dB over all 281 slices.

    On 16 evenly spaced slices the slice-to-slice spread dominates: the subset means must lie within 3 standard
    errors (per-slice sd / √16) of the all-slice figures; paired differences have a much smaller spread.
    """
    ph = load_phantoms(brainweb_path, 64, n_slices=16)
    projector = Projector(64)
    scans = simulate_scans(ph.activity, projector, 1e6, (0.25,), torch.Generator().manual_seed(0))
    n = len(ph.indices)
    recon = mlem(torch.cat([scans.full, scans.low[0.25], scans.expected]), projector, n_iter=50)
    truth = scans.truth
    images = {"full": recon[:n], "low": recon[n : 2 * n], "noiseless": recon[2 * n :]}
    p = {k: psnr(scale_to_total(v, truth), truth) for k, v in images.items()}
    s = {k: ssim(scale_to_total(v, truth), truth) for k, v in images.items() if k != "noiseless"}

    def close(values: torch.Tensor, reference: float) -> None:
        sem = float(values.std()) / math.sqrt(n)
        assert float(values.mean()) == pytest.approx(reference, abs=3 * sem)

    close(p["full"], 23.75)
    close(p["low"], 20.5)
    close(p["noiseless"], 26.0)
    close(s["full"], 0.917)
    close(s["low"], 0.865)
    close(p["full"] - p["low"], 23.75 - 20.5)
    close(p["noiseless"] - p["full"], 26.0 - 23.75)


def test_brainweb_grey_white_mapping_statistics(brainweb_path):
    """The documented facts about the file: grey/white separable in most slices, white usually the hotter."""
    ph = load_phantoms(brainweb_path, 64)
    labels = ph.regions
    found, white_hotter = 0, 0
    for i in range(labels.shape[0]):
        grey = ph.activity[i][labels[i] == GREY]
        white = ph.activity[i][labels[i] == WHITE]
        if grey.numel() and white.numel():
            found += 1
            white_hotter += int(white[0] > grey[0])
    assert found > labels.shape[0] / 2
    assert white_hotter > 0.8 * found
