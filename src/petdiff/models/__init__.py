"""Networks: the ADM (Dhariwal) UNet, EDM preconditioning, non-leaky geometric augmentation, named presets."""

from petdiff.models.augment import AUGMENT_DIM, AugmentParams, AugmentPipe
from petdiff.models.dhariwal_unet import DhariwalUNet
from petdiff.models.precond import EDMCoefficients, EDMPrecond, edm_coefficients
from petdiff.models.presets import (
    DEFAULT_PRESET,
    NETWORK_PRESETS,
    build_network,
    count_parameters,
    network_config,
)
from petdiff.models.unet_block import SelfAttention, UNetBlock

__all__ = [
    "AUGMENT_DIM",
    "DEFAULT_PRESET",
    "NETWORK_PRESETS",
    "AugmentParams",
    "AugmentPipe",
    "DhariwalUNet",
    "EDMCoefficients",
    "EDMPrecond",
    "SelfAttention",
    "UNetBlock",
    "build_network",
    "count_parameters",
    "edm_coefficients",
    "network_config",
]
