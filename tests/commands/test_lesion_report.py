"""lesions.csv end to end: a DICOM series with a SEG mask through `petdiff enhance`, hotspots, mask matching."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from petdiff.commands import enhance as enhance_cmd
from petdiff.commands.lesion_report import mask_path
from petdiff.evaluate.lesions import lesion_table
from tests.conftest import save_pair
from tests.io.mask_files import write_seg
from tests.io.pet_series import write_pet_series

IOP, ORIGIN, SPACING, DZ = (1.0, 0, 0, 0, 1.0, 0), (-10.0, -20.0, -30.0), (4.0, 4.0), 4.0


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return save_pair(tmp_path_factory.mktemp("pair"))[1]


def _study(tmp_path):
    """A 4-slice PET series (Bq/mL) with two hot lesions, and a SEG of them in the same folder."""
    values = np.full((4, 16, 16), 1000.0)
    labels = np.zeros(values.shape, dtype=np.int32)
    labels[1:3, 4:7, 4:7], labels[2, 10:12, 9:12] = 1, 2
    values[labels == 1], values[labels == 2] = 6000.0, 4000.0
    values[2, 5, 5] = 9000.0
    paths = write_pet_series(tmp_path / "pet", values, iop=IOP, origin=ORIGIN, pixel_spacing=SPACING, dz=DZ)
    seg = write_seg(tmp_path / "pet" / "seg.dcm", paths[0], labels, IOP, ORIGIN, SPACING, DZ)  # beside the PET
    return values, labels, seg


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_dicom_series_with_a_seg_mask_writes_lesions_csv(tmp_path, pair, capsys):
    values, labels, seg = _study(tmp_path)
    out = tmp_path / "out"
    code = enhance_cmd.main([str(tmp_path / "pet"), "-o", str(out), "--network", str(pair), "--samples", "3",
                             "--counts-per-unit", "1", "--lesions", str(seg)])
    err = capsys.readouterr().err
    assert code == 0, err
    rows = _rows(out / "pet" / "lesions.csv")
    assert [(r["lesion"], r["estimate"]) for r in rows] == [
        (str(k), e) for k in (1, 2) for e in ("low_dose", "enhanced_mean", "posterior_p05", "posterior_p95")]
    assert {r["name"] for r in rows} == {"lesion A", "lesion B"} and {r["units"] for r in rows} == {"Bq/mL"}
    expected = lesion_table(values, labels, (DZ, *SPACING))  # the input, by hand from the definitions
    low = {int(r["lesion"]): r for r in rows if r["estimate"] == "low_dose"}
    for k in (1, 2):
        for field in ("max", "peak", "mean", "mtv_ml", "tlg"):
            assert float(low[k][field]) == pytest.approx(getattr(expected[k], field), rel=1e-5)
    assert float(low[1]["max"]) == 9000.0 and float(low[1]["mtv_ml"]) == pytest.approx(18 * 0.064)
    for k in (1, 2):
        lo, hi = ({f: float(r[f]) for f in ("max", "mtv_ml")} for r in rows
                  if r["lesion"] == str(k) and r["estimate"].startswith("posterior"))
        assert lo["max"] <= hi["max"] and lo["mtv_ml"] <= hi["mtv_ml"]
    text = (out / "pet" / "lesions.csv").read_text() + err
    assert "Test^Phantom" not in text and "P001" not in text  # no patient identifiers
    assert "2 lesion(s) from the DICOM SEG" in err and "skipped (not a PET image series)" in err
    with np.load(out / "pet" / "enhanced.npz") as f:
        assert "samples" not in f.files  # drawn for the intervals, stored only with --keep-samples


def test_hotspots_with_the_regression_mean(tmp_path, pair, capsys):
    _study(tmp_path)
    out = tmp_path / "out"
    code = enhance_cmd.main([str(tmp_path / "pet"), "-o", str(out), "--network", str(pair), "--method", "mean",
                             "--counts-per-unit", "1", "--hotspots", "5", "--hotspot-threshold", "3000"])
    assert code == 0, capsys.readouterr().err
    rows = _rows(out / "pet" / "lesions.csv")
    assert [r["estimate"] for r in rows] == ["low_dose", "enhanced_mean"] * 2  # two regions, no samples
    assert rows[0]["name"] == "hotspot 1" and float(rows[0]["max"]) > float(rows[2]["max"])
    code = enhance_cmd.main([str(tmp_path / "pet"), "-o", str(out), "--hotspots", "2"])
    assert code == 2 and "--hotspot-threshold" in capsys.readouterr().err


def test_masks_are_matched_by_case_name(tmp_path):
    masks = tmp_path / "masks"
    (masks / "b").mkdir(parents=True)
    (masks / "a.nii.gz").write_bytes(b"")
    assert mask_path(masks, "a", 2) == masks / "a.nii.gz" and mask_path(masks, "b", 2) == masks / "b"
    with pytest.raises(ValueError, match=r"expected a mask for case 'c' \(c\.nii\.gz, c\.nii, c\.dcm, c\)"):
        mask_path(masks, "c", 2)
    with pytest.raises(ValueError, match="one mask file for 2 cases"):
        mask_path(masks / "a.nii.gz", "a", 2)
