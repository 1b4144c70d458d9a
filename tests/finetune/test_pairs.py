"""Case matching and pair checks: a bad pair is refused naming what is wrong; fractions given, in a CSV or estimated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from petdiff.finetune.pairs import CasePaths, check_pair, match_cases, network_pair
from petdiff.inference.spec import ModelSpec
from petdiff.io import Scan
from tests.finetune.conftest import tiny_pair


def _scans(units: str = "counts", fraction: float = 0.25) -> tuple[Scan, Scan]:
    low, full = tiny_pair(0, fraction=fraction)
    kw = {"units": units, "voxel_size": (3.0, 2.0, 2.0)}
    return Scan(torch.from_numpy(low)[:, None], **kw), Scan(torch.from_numpy(full)[:, None], **kw)


def test_counts_pair_fraction_estimated_and_checked():
    low, full = _scans()
    fraction, source, ratio = check_pair(low, full, None)
    assert source == "estimated" and abs(fraction - 0.25) < 0.03 and fraction == ratio
    assert check_pair(low, full, 0.25)[:2] == (0.25, "given")
    with pytest.raises(ValueError, match=r"near the dose fraction 0\.05"):
        check_pair(low, full, 0.05)
    with pytest.raises(ValueError, match="a fraction of the full dose's counts"):
        check_pair(full, full, None)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.replace(images=s.images[:, :, :, :20]), "grid"),
    (lambda s: s.replace(voxel_size=(3.0, 2.0, 2.5)), "voxel size"),
    (lambda s: s.replace(affine=np.diag([2.0, 2.0, 3.0, 1.0]) + np.eye(4) * 0 + _shift(5.0)), "geometry"),
    (lambda s: s.replace(units="Bq/mL"), "units"),
    (lambda s: s.replace(images=s.images - 1.0), "non-negative"),
    (lambda s: s.replace(images=s.images * float("nan")), "finite"),
    (lambda s: s.replace(images=torch.zeros_like(s.images)), "all-zero"),
])
def test_bad_pairs_are_refused(change, message):
    low, full = _scans()
    with pytest.raises(ValueError, match=message):
        check_pair(low, change(full), 0.25)


def _shift(mm: float) -> np.ndarray:
    """A translation by `mm` along x (added to an affine)."""
    out = np.zeros((4, 4))
    out[0, 3] = mm
    return out


def test_concentration_pairs_need_the_fraction_and_equal_values():
    low, full = _scans()
    conc_low = low.replace(units="SUV", images=low.images / 0.25)
    conc_full = full.replace(units="SUV")
    assert check_pair(conc_low, conc_full, 0.25)[0] == 0.25
    with pytest.raises(ValueError, match="--fraction"):
        check_pair(conc_low, conc_full, None)
    with pytest.raises(ValueError, match="about the same concentrations"):
        check_pair(low.replace(units="SUV"), conc_full, 0.25)


def test_network_units_and_grid():
    low, full = _scans()
    spec = ModelSpec.from_sidecars({"data": {"pixel_size_mm": None, "pixel_size_range_mm": [2.5, 4.5]}})
    px = spec.model_pixel_size(low.pixel_size)
    assert px == (2.5, 2.5)  # below the trained range: resampled to its bound
    case = CasePaths("Doe", Path("low.npy"), Path("full.npy"))
    pair = network_pair(case, 0, low, full, 0.25, "given", 0.25, px, 1.0)
    assert pair.low.shape[-1] == round(24 * 2.0 / 2.5) and pair.id == "case-01"
    assert abs(float(pair.low.sum() / low.images.sum()) - 1) < 2e-3  # counts kept by the resampling (FOV rounded)
    conc = network_pair(case, 0, low.replace(units="SUV"), full.replace(units="SUV"), 0.25, "given", 1.0,
                        low.pixel_size, 10.0)
    # a concentration: x = K·low in low-dose counts, target K·full/f in full-dose units
    assert torch.allclose(conc.full, full.images * 10.0 / 0.25)
    assert "Doe" not in str(pair.provenance())


def test_match_by_name_and_csv(tmp_path: Path):
    (tmp_path / "low").mkdir()
    (tmp_path / "full").mkdir()
    for name in ("a", "b"):
        np.save(tmp_path / "low" / f"{name}.npy", np.ones((1, 8, 8), np.float32))
    for name in ("b", "c"):
        np.save(tmp_path / "full" / f"{name}.npy", np.ones((1, 8, 8), np.float32))
    pairs, problems = match_cases(tmp_path / "low", tmp_path / "full")
    assert [p.name for p in pairs] == ["b"] and len(problems) == 2
    (tmp_path / "pairs.csv").write_text("low,full,fraction\nlow/a.npy,full/b.npy,0.1\nlow/b.npy,full/c.npy,\n"
                                        "low/a.npy,full/c.npy,half\n")
    pairs, problems = match_cases(tmp_path / "pairs.csv", None)
    assert [(p.fraction, p.low.name) for p in pairs] == [(0.1, "a.npy"), (None, "b.npy")]
    assert pairs[0].low == tmp_path / "low" / "a.npy" and "line 4" in problems[0]
    (tmp_path / "bad.csv").write_text("low_dose,full_dose\n")
    with pytest.raises(ValueError, match="columns 'low' and 'full'"):
        match_cases(tmp_path / "bad.csv", None)
