import pytest
import torch

from petdiff.evaluate.scan_settings import SETTINGS, ScanSetting, evaluate_setting, lesion_scores


def _lesion_scene():
    truth = torch.ones(1, 1, 32, 32)
    lesions = torch.zeros(1, 32, 32, dtype=torch.long)
    lesions[0, 8:12, 8:12] = 1
    truth[0, 0, 8:12, 8:12] = 5.0  # hot: contrast 4 over the background
    lesions[0, 20:24, 20:24] = 2
    truth[0, 0, 20:24, 20:24] = 0.2  # cold
    return truth, lesions


def test_lesion_scores_are_one_for_the_truth_and_zero_for_a_flat_image():
    truth, lesions = _lesion_scene()
    exact = lesion_scores(truth, truth, truth, lesions)
    assert exact["cr_hot"] == pytest.approx([1.0]) and exact["cr_cold"] == pytest.approx([1.0])
    assert exact["suvmax_vs_truth"] == pytest.approx([1.0]) and exact["suvmax_vs_full"] == pytest.approx([1.0])
    flat = lesion_scores(torch.ones_like(truth), truth, truth, lesions)
    assert flat["cr_hot"] == pytest.approx([0.0]) and flat["cr_cold"] == pytest.approx([0.0])
    half = truth.clone()
    half[0, 0, 8:12, 8:12] = 3.0  # half the hot contrast kept
    assert lesion_scores(half, truth, truth, lesions)["cr_hot"] == pytest.approx([0.5])


def test_a_setting_scores_every_baseline_on_held_out_slabs():
    small = ScanSetting("tiny-body", "body", 12.0, 15.0, (2, 4), 6.0, 2000.0, grid=32, slice_mm=10.0)
    result, images = evaluate_setting(None, small, 0.25, n=2)
    assert set(result["methods"]) == {"full dose", "low dose", f"filter {result['filter_fwhm_mm']:g} mm"}
    low, full = result["methods"]["low dose"], result["methods"]["full dose"]
    assert full["psnr"] > low["psnr"]  # four times the counts
    assert full["psnr_vs_full"] is None and low["psnr_vs_full"] > 0
    assert images["truth"].shape == (2, 1, 32, 32)
    assert set(SETTINGS) >= {"brain-2mm", "brain-2mm-filtered", "body-3.5mm"}


def test_a_scan_model_is_scored_on_the_stacks_with_their_context(tmp_path):
    from petdiff.inference import load_enhancer
    from tests.conftest import save_scan_pair

    enhancer = load_enhancer(save_scan_pair(tmp_path)[1], device="cpu")
    small = ScanSetting("tiny-body", "body", 12.0, 15.0, (2, 4), 6.0, 2000.0, grid=32, slice_mm=10.0)
    result, images = evaluate_setting(enhancer, small, 0.25, n=2, samples=2)
    assert {"regression", "posterior mean"} <= set(result["methods"]) and 0 <= result["coverage90"] <= 1
    assert images["regression"].shape == images["posterior std"].shape == (2, 1, 32, 32)
    assert float(images["posterior mean"].min()) >= 0
