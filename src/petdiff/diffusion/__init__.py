"""Diffusion: EDM samplers (k-diffusion calling convention), schedules, per-seed noise, posterior ensembles."""

from petdiff.diffusion.ensemble import PosteriorEnsemble, RunningMoments, posterior_ensemble
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
    "PosteriorEnsemble",
    "RunningMoments",
    "StackedRandomGenerator",
    "karras_sigmas",
    "parse_seeds",
    "posterior_ensemble",
    "sample",
    "sample_dpmpp_2m",
    "sample_edm",
    "sample_euler",
    "sampler_options",
]
