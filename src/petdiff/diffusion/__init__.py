"""Diffusion: EDM samplers (k-diffusion calling convention), schedules, per-seed noise."""

from petdiff.diffusion.noise import StackedRandomGenerator, parse_seeds
from petdiff.diffusion.samplers import (
    EDM_REFERENCE_SAMPLING,
    SAMPLERS,
    sample,
    sample_dpmpp_2m,
    sample_edm,
    sample_euler,
    sampler_options,
)
from petdiff.diffusion.schedules import karras_sigmas

__all__ = [
    "EDM_REFERENCE_SAMPLING",
    "SAMPLERS",
    "StackedRandomGenerator",
    "karras_sigmas",
    "parse_seeds",
    "sample",
    "sample_dpmpp_2m",
    "sample_edm",
    "sample_euler",
    "sampler_options",
]
