"""Evaluation: metrics (PSNR, SSIM, NRMSE, region bias/noise), posterior calibration, classical baselines tuned on
training phantoms, the shared evaluation run and its report (tables, figures)."""

from petdiff.evaluate.baselines import BaselineSettings, mlem_path, run_baselines, tune_baselines
from petdiff.evaluate.calibration import (
    calibration,
    coverage,
    expected_sample_coverage,
    gaussian_intervals,
    sample_intervals,
    student_t_quantile,
    z_scores,
)
from petdiff.evaluate.masks import depth, dilate, erode, fill_holes, head_mask
from petdiff.evaluate.metrics import image_metrics, mse, nrmse, psnr, region_bias_noise, scale_to_total, ssim
from petdiff.evaluate.pipeline import DoseResult, Evaluation, evaluate_scans
from petdiff.evaluate.regions import BRAINWEB_REGION_NAMES, brainweb_regions, procedural_regions
from petdiff.evaluate.scans import Phantoms, Scans, load_phantoms, select_indices, simulate_scans

__all__ = [
    "BRAINWEB_REGION_NAMES",
    "BaselineSettings",
    "DoseResult",
    "Evaluation",
    "Phantoms",
    "Scans",
    "brainweb_regions",
    "calibration",
    "coverage",
    "depth",
    "dilate",
    "erode",
    "evaluate_scans",
    "expected_sample_coverage",
    "fill_holes",
    "gaussian_intervals",
    "head_mask",
    "image_metrics",
    "load_phantoms",
    "mlem_path",
    "mse",
    "nrmse",
    "procedural_regions",
    "psnr",
    "region_bias_noise",
    "run_baselines",
    "sample_intervals",
    "scale_to_total",
    "select_indices",
    "simulate_scans",
    "ssim",
    "student_t_quantile",
    "tune_baselines",
    "z_scores",
]
