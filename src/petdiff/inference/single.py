"""The single conditional denoiser of older snapshots (role 'denoiser') behind the `Enhancer` interface.

`enhance_scan` only needs `resolution`, `device`, `data`, `settings(...)` and `enhance(...)`; this adapter gives
them for one network that samples x ~ p(full dose | low dose) directly (`petdiff.inference.enhance.enhance`),
so old snapshots run through the same units / grid / tiling boundary as the regression + residual pair. The
count level is not an input of these networks; the `regression` of the result is the posterior mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from petdiff.inference.enhance import enhance
from petdiff.inference.enhancer import PairEnhancement, SamplingSettings, apply_warm_start, resolve_seeds
from petdiff.inference.model import LoadedModel
from petdiff.inference.settings import sampling_settings


class SingleNetworkEnhancer:
    """One conditional diffusion network (sidecar role 'denoiser') with the Enhancer's calling convention."""

    def __init__(self, model: LoadedModel):
        if model.mode != "pet" or model.role != "denoiser":
            raise ValueError(f"network: {model.path}: --method denoiser expects a single conditional PET network "
                             f"(mode 'pet', role 'denoiser'), found mode {model.mode!r}, role {model.role!r}")
        self.model = model

    @property
    def resolution(self) -> tuple[int, int]:
        """(H, W) the network was trained at."""
        return tuple(self.model.net.img_resolution)

    @property
    def device(self) -> torch.device:
        """Where the network runs."""
        return self.model.device

    @property
    def data(self) -> dict[str, Any]:
        """The training data section of the sidecar."""
        return dict(self.model.meta.get("data", {}))

    def settings(self, method: str = "denoiser", samples: int | None = None,
                 seeds: str | int | Sequence[int] | None = None, sampler: str | None = None,
                 steps: int | None = None, warm_start: float | None = None, batch_size: int = 16) -> SamplingSettings:
        """Resolve the sampling settings once: the sidecar's `sampling` section, then these arguments."""
        if method != "denoiser":
            raise ValueError(f"method: a single denoiser network supports only 'denoiser', found {method!r}")
        samples, seed_list = resolve_seeds(samples, seeds, default=8)
        name, opts = sampling_settings(self.model.meta.get("sampling"), self.model.net, sampler, steps)
        apply_warm_start(opts, warm_start)
        return SamplingSettings(method="denoiser", samples=samples, seeds=seed_list, sampler=name, options=opts,
                                warm_start=warm_start, batch_size=batch_size)

    def enhance(self, low_dose: torch.Tensor, fraction: torch.Tensor | float, counts: torch.Tensor | float,
                settings: SamplingSettings | None = None, keep_samples: bool = False,
                callback: Any = None) -> PairEnhancement:
        """K posterior samples per slice (B, 1, H, W) → mean, std, samples in full-dose units (low-dose / f)."""
        settings = settings or self.settings()
        opts = {k: v for k, v in settings.options.items() if k != "num_steps"}
        if callback is not None:
            opts["callback"] = callback
        result = enhance(self.model, low_dose, fraction=fraction, samples=settings.samples, seeds=settings.seeds,
                         sampler=settings.sampler, steps=settings.options.get("num_steps"),
                         batch_size=settings.batch_size, keep_samples=keep_samples, **opts)
        batch = low_dose.shape[0]
        f = torch.as_tensor(fraction, dtype=torch.float32).reshape(-1).expand(batch).cpu()
        n = torch.as_tensor(counts, dtype=torch.float32).reshape(-1).expand(batch).cpu()
        return PairEnhancement(mean=result.mean, std=result.std, samples=result.samples, regression=result.mean,
                               settings=settings, count_level=n, fraction=f)
