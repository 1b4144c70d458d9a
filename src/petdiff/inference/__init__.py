"""Inference: load a trained model, enhance low-dose scans (posterior mean and spread), generate samples per seed.

Laid out by role: `spec` (what a model expects, read once from its sidecars), `model` (loading snapshots),
`enhancers` (one protocol; the regression + residual pair and the old single denoiser behind it), `settings`,
`tiling` (blended tiles, several outputs at once), `posterior` (the one streaming mean / std step), `volume`
(slices with their 2.5D context in slabs, whole or tiled), `grid` and `scan` (a user's scan in its units and
on its grid). `generate` and `conditions` sample unconditional / per-seed conditional images.
"""

from petdiff.inference.conditions import ConditionSource, condition_seed, conditions_from_config
from petdiff.inference.enhancers import DenoiserEnhancer, Enhancer, PairEnhancer, count_level, load_enhancer
from petdiff.inference.generate import Generated, generate, rank_seeds
from petdiff.inference.model import LoadedModel, default_weights_dir, load_model, load_pair
from petdiff.inference.posterior import PosteriorStats
from petdiff.inference.scan import ScanEnhancement, enhance_scan
from petdiff.inference.settings import FALLBACK_SAMPLING, SamplingSettings, sampling_settings
from petdiff.inference.spec import ModelSpec
from petdiff.inference.volume import VolumeEnhancement, enhance_slices, enhance_volume

__all__ = [
    "FALLBACK_SAMPLING",
    "ConditionSource",
    "DenoiserEnhancer",
    "Enhancer",
    "Generated",
    "LoadedModel",
    "ModelSpec",
    "PairEnhancer",
    "PosteriorStats",
    "SamplingSettings",
    "ScanEnhancement",
    "VolumeEnhancement",
    "condition_seed",
    "conditions_from_config",
    "count_level",
    "default_weights_dir",
    "enhance_scan",
    "enhance_slices",
    "enhance_volume",
    "generate",
    "load_enhancer",
    "load_model",
    "load_pair",
    "rank_seeds",
    "sampling_settings",
]
