"""EDM preconditioning (Karras et al. 2022, Table 1) wrapped around the ADM UNet, with an optional conditional image.

D(x; σ) = c_skip(σ)·x + c_out(σ)·F([c_in(σ)·x, y/σ_d]; c_noise(σ)), where y is the (low-dose) condition.
Only x is noised; the condition is concatenated on the channel axis after scaling by 1/σ_d, as in the reference PET
code: data normalised to std ≈ σ_d then enters the network with unit scale, like c_in·x does.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from petdiff.models.dhariwal_unet import DhariwalUNet, as_resolution
from petdiff.utils.validation import check_image_batch

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# UNet hyper-parameters EDMPrecond forwards (the rest of DhariwalUNet's arguments it sets itself), with defaults.
UNET_DEFAULTS = {
    name: param.default
    for name, param in inspect.signature(DhariwalUNet.__init__).parameters.items()
    if param.default is not inspect.Parameter.empty and name != "label_dim"
}


class EDMCoefficients(NamedTuple):
    """The four σ-dependent preconditioning factors of EDM."""

    c_skip: torch.Tensor
    c_out: torch.Tensor
    c_in: torch.Tensor
    c_noise: torch.Tensor


def edm_coefficients(sigma: torch.Tensor, sigma_data: float) -> EDMCoefficients:
    """c_skip = σ_d²/(σ²+σ_d²), c_out = σσ_d/√(σ²+σ_d²), c_in = 1/√(σ²+σ_d²), c_noise = ¼ ln σ."""
    total = sigma**2 + sigma_data**2
    return EDMCoefficients(
        c_skip=sigma_data**2 / total,
        c_out=sigma * sigma_data / total.sqrt(),
        c_in=1 / total.sqrt(),
        c_noise=sigma.log() / 4,
    )


class EDMPrecond(torch.nn.Module):
    """D(x; σ, condition) = c_skip x + c_out F([c_in x, condition/σ_d]; ¼ ln σ) around a DhariwalUNet."""

    def __init__(
        self,
        img_resolution: int | Sequence[int],
        img_channels: int,
        cond_channels: int = 0,
        label_dim: int = 0,
        sigma_data: float = 0.5,
        sigma_min: float = 0.0,
        sigma_max: float | str = math.inf,
        use_amp: bool = False,
        amp_dtype: str = "bfloat16",
        channels_last: bool = True,
        **unet_kwargs: Any,
    ):
        super().__init__()
        self.img_resolution = as_resolution(img_resolution)
        for name, value, low in (("img_channels", img_channels, 1), ("cond_channels", cond_channels, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}: expected an int ≥ {low}, found {value!r}")
        if amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype: expected one of {sorted(AMP_DTYPES)}, found {amp_dtype!r}")
        self.sigma_data = _as_float("sigma_data", sigma_data)
        if not (math.isfinite(self.sigma_data) and self.sigma_data > 0):
            raise ValueError(f"sigma_data: expected a positive finite number, found {sigma_data!r}")
        self.sigma_min = _as_float("sigma_min", sigma_min)
        self.sigma_max = _as_float("sigma_max", sigma_max)  # "inf" (as stored in JSON configs) is accepted
        if not 0 <= self.sigma_min < self.sigma_max:
            raise ValueError(f"sigma_min, sigma_max: expected 0 ≤ sigma_min < sigma_max, "
                             f"found {sigma_min}, {sigma_max}")
        self.img_channels = img_channels
        self.cond_channels = cond_channels
        self.label_dim = label_dim
        self.use_amp = bool(use_amp)
        self.amp_dtype = amp_dtype
        self.channels_last = bool(channels_last)
        unknown = sorted(set(unet_kwargs) - set(UNET_DEFAULTS))
        if unknown:
            raise ValueError(f"unet_kwargs: expected keys among {sorted(UNET_DEFAULTS)}, found unknown {unknown}")
        self._unet_kwargs = {**UNET_DEFAULTS, **unet_kwargs}
        self.model = DhariwalUNet(img_resolution=self.img_resolution, in_channels=img_channels + cond_channels,
                                  out_channels=img_channels, label_dim=label_dim, **self._unet_kwargs)

    @property
    def augment_dim(self) -> int:
        """Length of the augmentation label the network accepts (0 = none)."""
        return self.model.augment_dim

    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable architecture; ``build_network(net.config)`` rebuilds an identical (untrained) model."""
        kwargs = {key: _jsonable(value) for key, value in self._unet_kwargs.items()}
        return {
            "img_resolution": list(self.img_resolution),
            "img_channels": self.img_channels,
            "cond_channels": self.cond_channels,
            "label_dim": self.label_dim,
            "sigma_data": self.sigma_data,
            "sigma_min": self.sigma_min,
            "sigma_max": self.sigma_max if math.isfinite(self.sigma_max) else "inf",  # JSON has no infinity
            "use_amp": self.use_amp,
            "amp_dtype": self.amp_dtype,
            "channels_last": self.channels_last,
            **kwargs,
        }

    def forward(
        self,
        x: torch.Tensor,
        sigma: float | torch.Tensor,
        condition: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        augment_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """D(x; σ) for x (B, img_channels, H, W), σ scalar / (B,) / (B,1,1,1), condition (B, cond_channels, H, W)."""
        x = self._check_input(x).to(torch.float32)
        batch = x.shape[0]
        sigma = self._check_sigma(sigma, batch, x.device)
        condition = self._check_condition(condition, x)
        class_labels = self._check_labels("class_labels", class_labels, self.label_dim, batch, x.device)
        if augment_labels is not None:
            if self.augment_dim == 0:
                raise ValueError("augment_labels: this network has augment_dim=0, so augmentation would leak; "
                                 "found augment labels")
            augment_labels = self._check_labels("augment_labels", augment_labels, self.augment_dim, batch, x.device)

        c = edm_coefficients(sigma, self.sigma_data)
        net_in = c.c_in * x
        if condition is not None:
            net_in = torch.cat([net_in, condition / self.sigma_data], dim=1)
        if self.channels_last:
            # An NHWC input makes every convolution run channels-last (faster on CPU and on CUDA tensor cores);
            # the weights stay contiguous, so state_dicts remain directly savable with safetensors.
            net_in = net_in.contiguous(memory_format=torch.channels_last)
        with self._autocast(x.device):
            F_x = self.model(net_in, c.c_noise.flatten(), class_labels=class_labels, augment_labels=augment_labels)
        return c.c_skip * x + c.c_out * F_x.to(torch.float32)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """bf16/fp16 autocast on the input's device when use_amp, else a no-op."""
        if not self.use_amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[self.amp_dtype])

    @property
    def fully_convolutional(self) -> bool:
        """True without attention: the network then runs on any H, W divisible by its down-sampling."""
        return not self._unet_kwargs.get("attn_stages")

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Require x (B, img_channels, H, W) at the network resolution (any H, W divisible by 8 without attention)."""
        check_image_batch("x", x, channels=self.img_channels)
        if self.fully_convolutional:
            step = 2 ** (len(self._unet_kwargs["channel_mult"]) - 1)
            if x.shape[-2] % step or x.shape[-1] % step:
                raise ValueError(f"x: expected H and W divisible by {step}, found {tuple(x.shape[-2:])}")
        elif tuple(x.shape[-2:]) != self.img_resolution:
            raise ValueError(f"x: expected spatial size {self.img_resolution}, found {tuple(x.shape[-2:])}")
        return x

    def _check_condition(self, condition: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
        """Require a (B, cond_channels, H, W) condition exactly when the network was built with cond_channels > 0."""
        if self.cond_channels == 0:
            if condition is not None:
                raise ValueError(f"condition: this network has cond_channels=0, found a tensor of shape "
                                 f"{tuple(condition.shape)}")
            return None
        if condition is None:
            raise ValueError(f"condition: expected a (B, {self.cond_channels}, H, W) tensor, found None")
        check_image_batch("condition", condition, channels=self.cond_channels)
        expected = (x.shape[0], self.cond_channels, *x.shape[-2:])
        if tuple(condition.shape) != expected:
            raise ValueError(f"condition: expected shape {expected} to match x, found {tuple(condition.shape)}")
        return condition.to(device=x.device, dtype=torch.float32)

    @staticmethod
    def _check_sigma(sigma: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        """Accept a scalar, (B,), (B, 1) or (B, 1, 1, 1) noise level; return it as (B, 1, 1, 1) float32."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=device)
        if sigma.numel() == 1:
            return sigma.reshape(1, 1, 1, 1).expand(batch, 1, 1, 1)
        if sigma.shape[0] != batch or sigma.numel() != batch:
            raise ValueError(f"sigma: expected a scalar or one value per image (shape ({batch},) or ({batch}, 1, 1, 1))"
                             f", found shape {tuple(sigma.shape)}")
        return sigma.reshape(batch, 1, 1, 1)

    @staticmethod
    def _check_labels(name: str, labels: torch.Tensor | None, dim: int, batch: int,
                      device: torch.device) -> torch.Tensor | None:
        """Require (B, dim) or (1, dim) labels; None means the all-zero label (unconditional / not augmented)."""
        if dim == 0:
            if labels is not None:
                raise ValueError(f"{name}: this network takes no {name} (dimension 0), found shape "
                                 f"{tuple(labels.shape)}")
            return None
        if labels is None:
            return torch.zeros(batch, dim, device=device)
        labels = torch.as_tensor(labels, device=device).to(torch.float32)
        if labels.ndim == 1:
            labels = labels[None]
        if labels.ndim != 2 or labels.shape[1] != dim or labels.shape[0] not in (1, batch):
            raise ValueError(f"{name}: expected shape ({batch}, {dim}), found {tuple(labels.shape)}")
        return labels.expand(batch, dim)


def _as_float(name: str, value: Any) -> float:
    """float(value), or a ValueError naming the argument."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, found {value!r}") from None


def _jsonable(value: Any) -> Any:
    """Tuples → lists (recursively) so the config survives a JSON round trip unchanged."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value
