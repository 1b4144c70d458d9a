"""Inference: load a trained snapshot, enhance low-dose scans (posterior mean and spread), generate samples per seed.

Sits between training (snapshots) and the commands / evaluation that use a trained network.
"""

from petdiff.inference.conditions import ConditionSource, condition_seed, conditions_from_config
from petdiff.inference.enhance import Enhancement, enhance, reconstruct
from petdiff.inference.generate import Generated, generate, rank_seeds
from petdiff.inference.model import LoadedModel, default_weights_dir, load_model
from petdiff.inference.settings import FALLBACK_SAMPLING, sampling_settings

__all__ = [
    "FALLBACK_SAMPLING",
    "ConditionSource",
    "Enhancement",
    "Generated",
    "LoadedModel",
    "condition_seed",
    "conditions_from_config",
    "default_weights_dir",
    "enhance",
    "generate",
    "load_model",
    "rank_seeds",
    "reconstruct",
    "sampling_settings",
]
