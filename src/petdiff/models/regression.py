"""The regression network of the residual-corrective pair (after CorrDiff, Mardani et al. 2023).

μθ(y, d) ≈ E[x | y, d]: the same ADM UNet, fed the normalised low-dose image y (scaled by 1/σ_d like
EDMPrecond's condition) and the dose label d, run at a fixed noise label (no diffusion time). Its output
is an activity, so it is non-negative by construction: in the network range x = 2·img/s − 1 that is
x ≥ −1, and the head is μ = softplus(F + softplus⁻¹(y + 1)) − 1, which starts as the identity μ = y
(F ≡ 0 at init) and can never fall below −1. No clip: the conditional mean of a non-negative
quantity is non-negative, so this constrains nothing that MSE should reach.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from petdiff.models.dhariwal_unet import DhariwalUNet, as_resolution
from petdiff.models.precond import AMP_DTYPES, UNET_DEFAULTS, _jsonable
from petdiff.utils.validation import check_image_batch

ROLE_MEAN = "mean"  # the role name of the first (64×64, 4 mm) pair's regression network
ROLE_REGRESSION = "regression"  # the scan models' name for the same role
REGRESSION_ROLES = (ROLE_MEAN, ROLE_REGRESSION)
_FLOOR = 1e-4  # softplus⁻¹ is −∞ at 0: the skip path starts from max(y + 1, _FLOOR)


def inverse_softplus(z: torch.Tensor) -> torch.Tensor:
    """softplus⁻¹(z) = z + log(1 − e^(−z)) for z > 0 (stable form of log(eᶻ − 1))."""
    return z + torch.log(-torch.expm1(-z))


class RegressionUNet(torch.nn.Module):
    """μθ(y, d) = softplus(F(y/σ_d; d) + softplus⁻¹(y + 1)) − 1 in the network's [−1, 1] range (≥ −1)."""

    def __init__(
        self,
        img_resolution: int | Sequence[int],
        img_channels: int = 1,
        cond_channels: int = 1,
        label_dim: int = 2,
        sigma_data: float = 0.5,
        use_amp: bool = False,
        amp_dtype: str = "bfloat16",
        channels_last: bool = True,
        role: str = ROLE_MEAN,
        **unet_kwargs: Any,
    ):
        super().__init__()
        if role not in REGRESSION_ROLES:
            raise ValueError(f"role: expected one of {REGRESSION_ROLES} for a RegressionUNet, found {role!r}")
        self.role = role
        self.img_resolution = as_resolution(img_resolution)
        if img_channels != 1 or cond_channels < 1 or cond_channels % 2 != 1:
            raise ValueError(f"img_channels, cond_channels: expected 1 and an odd number 2k+1 (the low-dose slice "
                             f"with k neighbours each side in, its mean out), found {img_channels} and "
                             f"{cond_channels}")
        if amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype: expected one of {sorted(AMP_DTYPES)}, found {amp_dtype!r}")
        if not (math.isfinite(float(sigma_data)) and float(sigma_data) > 0):
            raise ValueError(f"sigma_data: expected a positive finite number, found {sigma_data!r}")
        unknown = sorted(set(unet_kwargs) - set(UNET_DEFAULTS))
        if unknown:
            raise ValueError(f"unet_kwargs: expected keys among {sorted(UNET_DEFAULTS)}, found unknown {unknown}")
        self.img_channels, self.cond_channels, self.label_dim = img_channels, cond_channels, int(label_dim)
        self.sigma_data = float(sigma_data)
        self.use_amp, self.amp_dtype, self.channels_last = bool(use_amp), amp_dtype, bool(channels_last)
        self._unet_kwargs = {**UNET_DEFAULTS, **unet_kwargs}
        self.model = DhariwalUNet(img_resolution=self.img_resolution, in_channels=cond_channels,
                                  out_channels=img_channels, label_dim=self.label_dim, **self._unet_kwargs)
        self.downsampling = 2 ** (len(self._unet_kwargs["channel_mult"]) - 1)

    @property
    def augment_dim(self) -> int:
        """Length of the augmentation label the network accepts (0 = none)."""
        return self.model.augment_dim

    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable architecture; ``build_network(net.config)`` rebuilds an identical (untrained) model."""
        return {
            "role": self.role,
            "img_resolution": list(self.img_resolution),
            "img_channels": self.img_channels,
            "cond_channels": self.cond_channels,
            "label_dim": self.label_dim,
            "sigma_data": self.sigma_data,
            "use_amp": self.use_amp,
            "amp_dtype": self.amp_dtype,
            "channels_last": self.channels_last,
            **{key: _jsonable(value) for key, value in self._unet_kwargs.items()},
        }

    def forward(self, condition: torch.Tensor, class_labels: torch.Tensor | None = None,
                augment_labels: torch.Tensor | None = None) -> torch.Tensor:
        """μ for a normalised low-dose batch (B, 2k+1, H, W), centre slice = channel k, H and W divisible by 8."""
        check_image_batch("condition", condition, channels=self.cond_channels)
        height, width = condition.shape[-2:]
        if height % self.downsampling or width % self.downsampling:
            raise ValueError(f"condition: expected H and W divisible by {self.downsampling}, found {height}x{width}")
        y = condition.to(torch.float32)
        batch = y.shape[0]
        labels = None
        if self.label_dim:
            if class_labels is None:
                raise ValueError(f"class_labels: this network needs its ({batch}, {self.label_dim}) dose labels, "
                                 "found None")
            labels = torch.as_tensor(class_labels, device=y.device, dtype=torch.float32).reshape(-1, self.label_dim)
            labels = labels.expand(batch, -1) if labels.shape[0] == 1 else labels
            if labels.shape[0] != batch:
                raise ValueError(f"class_labels: expected shape ({batch}, {self.label_dim}), "
                                 f"found {tuple(labels.shape)}")
        net_in = y / self.sigma_data
        if self.channels_last:
            net_in = net_in.contiguous(memory_format=torch.channels_last)
        noise_labels = torch.zeros(batch, device=y.device)
        autocast = (torch.autocast(device_type=y.device.type, dtype=AMP_DTYPES[self.amp_dtype]) if self.use_amp
                    else contextlib.nullcontext())
        with autocast:
            correction = self.model(net_in, noise_labels, class_labels=labels, augment_labels=augment_labels)
        centre = self.cond_channels // 2
        skip = inverse_softplus((y[:, centre : centre + 1] + 1.0).clamp_min(_FLOOR))
        return F.softplus(correction.to(torch.float32) + skip) - 1.0
