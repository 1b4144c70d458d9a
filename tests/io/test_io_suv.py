"""SUVbw from the tags: hand computations for DecayCorrection START / ADMIN / NONE, options, missing tags."""

from __future__ import annotations

import numpy as np
import pytest
from pet_series import sample_values, write_pet_series

from petdiff.io import read_scan

WEIGHT_G, DOSE_BQ, HALF_LIFE = 70_000.0, 370e6, 6586.2


@pytest.fixture
def pet_values() -> np.ndarray:
    return sample_values()


def _suv(values: np.ndarray, decay_s) -> np.ndarray:
    """Hand computation: activity × weight[g] / (dose · 2^(−Δt/T½))."""
    dose = DOSE_BQ * 2.0 ** (-np.asarray(decay_s, float) / HALF_LIFE)
    return values * (WEIGHT_G / dose).reshape(-1, 1, 1)


def test_start_decays_the_dose_to_the_series_time(tmp_path, pet_values):
    write_pet_series(tmp_path / "s", pet_values, decay="START", injection_time="100000", series_time="110000")
    scan = read_scan(tmp_path / "s", units="SUV")
    assert scan.units == "SUV"
    np.testing.assert_allclose(scan.images[:, 0].numpy(), _suv(pet_values, 3600.0), rtol=1e-6)
    assert scan.suv.sources == {
        "weight": "PatientWeight (0010,1030)", "dose": "RadionuclideTotalDose (0018,1074)",
        "decay_correction": "DecayCorrection (0054,1102)", "half_life": "RadionuclideHalfLife (0018,1075)",
        "injection_time": "RadiopharmaceuticalStartTime (0018,1072)", "reference_time": "SeriesTime (0008,0031)"}
    assert any(n.startswith("SUVbw factor") for n in scan.notes)


def test_start_uses_the_earliest_acquisition_when_the_series_time_is_later(tmp_path, pet_values):
    times = ["110000"] * 2 + ["110500"] * 2
    write_pet_series(tmp_path / "s", pet_values, series_time="120000", acquisition_times=times)
    scan = read_scan(tmp_path / "s", units="SUV")
    np.testing.assert_allclose(scan.images[:, 0].numpy(), _suv(pet_values, 3600.0), rtol=1e-6)
    assert scan.suv.sources["reference_time"].startswith("AcquisitionTime")


def test_admin_uses_the_injected_dose_itself(tmp_path, pet_values):
    write_pet_series(tmp_path / "s", pet_values, decay="ADMIN", half_life=None, injection_time=None)
    scan = read_scan(tmp_path / "s", units="SUV")
    np.testing.assert_allclose(scan.images[:, 0].numpy(), _suv(pet_values, 0.0), rtol=1e-6)


def test_none_decays_to_each_slice_acquisition(tmp_path, pet_values):
    times = ["110000", "110100", "110200", "110300"]
    write_pet_series(tmp_path / "s", pet_values, decay="NONE", acquisition_times=times, order=[3, 2, 1, 0])
    scan = read_scan(tmp_path / "s", units="SUV")
    np.testing.assert_allclose(scan.images[:, 0].numpy(), _suv(pet_values, [3600, 3660, 3720, 3780]), rtol=1e-6)


def test_injection_before_midnight(tmp_path, pet_values):
    write_pet_series(tmp_path / "s", pet_values, injection_time="235000", series_time="001000")
    scan = read_scan(tmp_path / "s", units="SUV")
    np.testing.assert_allclose(scan.images[:, 0].numpy(), _suv(pet_values, 1200.0), rtol=1e-6)
    assert "day before" in scan.suv.sources["injection_time"]


@pytest.mark.parametrize(("missing", "tag", "option"), [
    ("weight", "PatientWeight", "--patient-weight"),
    ("dose", "RadionuclideTotalDose", "--injected-dose"),
    ("half_life", "RadionuclideHalfLife", "--half-life"),
    ("injection_time", "RadiopharmaceuticalStartTime", "--injection-time"),
    ("decay", "DecayCorrection", "--decay-correction"),
])
def test_missing_tags_name_the_tag_and_the_option(tmp_path, pet_values, missing, tag, option):
    write_pet_series(tmp_path / "s", pet_values, **{missing: None})
    with pytest.raises(ValueError, match=f"{tag}.*missing.*pass {option}"):
        read_scan(tmp_path / "s", units="SUV")
    assert read_scan(tmp_path / "s").units == "Bq/mL"  # only SUV needs them


def test_options_supply_and_override_tags(tmp_path, pet_values):
    write_pet_series(tmp_path / "s", pet_values, weight=None, dose=None)
    scan = read_scan(tmp_path / "s", units="SUV", patient_weight=80.0, injected_dose=300.0)
    expected = pet_values * 80_000.0 / (300e6 * 2.0 ** (-3600.0 / HALF_LIFE))
    np.testing.assert_allclose(scan.images[:, 0].numpy(), expected, rtol=1e-6)
    assert scan.suv.sources["weight"] == "--patient-weight" and scan.suv.sources["dose"] == "--injected-dose"
