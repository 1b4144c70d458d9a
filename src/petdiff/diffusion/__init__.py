"""Diffusion: EDM loss, samplers (k-diffusion calling convention), schedules, per-seed noise, guidance, ensembles."""

from petdiff.diffusion.ensemble import PosteriorEnsemble, RunningMoments, posterior_ensemble
from petdiff.diffusion.guidance import denoiser, guided_denoiser
from petdiff.diffusion.loss import EDMLoss, LossTerms
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
    "EDMLoss",
    "LossTerms",
    "PosteriorEnsemble",
    "RunningMoments",
    "StackedRandomGenerator",
    "denoiser",
    "guided_denoiser",
    "karras_sigmas",
    "parse_seeds",
    "posterior_ensemble",
    "sample",
    "sample_dpmpp_2m",
    "sample_edm",
    "sample_euler",
    "sampler_options",
]
