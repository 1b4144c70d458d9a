"""One enhancer protocol, two adapters: the regression + residual pair (CorrDiff) and the old single denoiser.

Every enhancer maps tiles of low-dose counts (B, 2k+1, h, w) (the slice and its k neighbours each side,
in LOW-DOSE COUNTS PER PIXEL) at a known dose fraction f to full-dose counts (low-dose units / f):

* `spec`: the `ModelSpec` read once from the sidecar(s); `methods`: what it offers;
* `settings(method, ...)`: the `SamplingSettings` of a run, resolved once;
* `dose_level(centre)`: the level it is told the dose by (N_low or ρ, see `ModelSpec`), per tile;
* `run(low, fraction, settings, seeds)`: a dict of outputs: "regression" (B, 1, h, w) where the method gives
  one, "samples" (B, S, h, w) for the S = len(seeds) seeds (sample k always from seed k, whatever the batch).

Normalisation (both adapters, sidecar `normalization`): the full-dose scale s = max(smooth(low_centre/f))
(quantitative; reference: max(low_centre)/f), condition y = 2·low/(s·f) − 1 on every channel, output
(x + 1)·s/2. The pair: μ = regression(y, d); posterior samples x_k = μ + σ_r/σ_d·r_k with r_k drawn by the
residual model conditioned on (y, μ, d), projected onto activity ≥ 0 (x ≥ −1), in antithetic pairs by default.
The dose label d: (log10 N_low − 5, f) with N_low = Σ s_j λ_j of the 64×64 tile for old snapshots
(`dose_label` "counts", `count_level`), log10 ρ − 1 of the centre slice for scan models (`density_labels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from petdiff.data.normalization import Normalizer
from petdiff.diffusion import posterior_ensemble
from petdiff.diffusion.guidance import denoiser
from petdiff.inference.model import LoadedModel, load_count_estimator, load_model, load_pair
from petdiff.inference.settings import (
    SamplingSettings,
    apply_warm_start,
    check_batch_size,
    network_precision,
    resolve_precision,
    resolve_seeds,
    sampling_settings,
)
from petdiff.inference.spec import ModelSpec
from petdiff.models.dose import density_from_labels, density_labels, dose_labels, peak_density
from petdiff.physics import Projector

Outputs = dict[str, torch.Tensor]


class Enhancer(Protocol):
    """What the volume and scan layers need of a model; see the module docstring."""

    spec: ModelSpec
    methods: tuple[str, ...]
    models: tuple[LoadedModel, ...]  # the snapshots behind it (paths, sidecars)

    @property
    def device(self) -> torch.device:
        """Where the networks run."""

    def settings(self, method: str | None = None, samples: int | None = None,
                 seeds: str | int | Sequence[int] | None = None, sampler: str | None = None,
                 steps: int | None = None, warm_start: float | None = None, batch_size: int = 32,
                 antithetic: bool | None = None, precision: str = "float32") -> SamplingSettings:
        """The run's settings, resolved once."""

    def dose_level(self, centre: torch.Tensor) -> torch.Tensor:
        """(B,) the dose level the networks are told for low-dose count slices (B, 1, h, w)."""

    def run(self, low: torch.Tensor, fraction: float, settings: SamplingSettings, seeds: Sequence[int]) -> Outputs:
        """Full-dose outputs of low-dose count tiles (B, 2k+1, h, w)."""

    def estimate_counts_per_unit(self, tiles: torch.Tensor, fraction: float) -> float | None:
        """K̂ for tiles (B, 2k+1, h, w) of a concentration scan in its units, None without an estimator."""


def count_level(low_dose: torch.Tensor, projector: Projector, counts_per_unit: float = 1.0) -> torch.Tensor:
    """N_low = K·Σ_j s_j λ_j per slice, s = Aᵀ1: MLEM preserves counts, so for counts units (K = 1) this is Σ y."""
    sensitivity = projector.sensitivity.to(low_dose.device, low_dose.dtype)
    return (low_dose * sensitivity).flatten(1).sum(dim=1).double().mul(float(counts_per_unit)).float()


def _check_method(method: str, methods: tuple[str, ...], where: str) -> str:
    """Require a method the enhancer offers."""
    if method not in methods:
        raise ValueError(f"method: {where} offers {', '.join(methods)}, found {method!r}")
    return method


class _Normalised:
    """The normalisation shared by both adapters (see the module docstring)."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.normalizer = Normalizer(spec.normalization)

    def to_network(self, low: torch.Tensor, fraction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(condition y on every channel, full-dose scale s (B,)) of low-dose tiles (B, C, h, w)."""
        k = self.spec.context
        scale = self.normalizer.scale(low[:, k:k + 1], fraction)
        if self.normalizer.mode == "reference":
            scale = scale / fraction
        return self.normalizer.normalize(low, scale * fraction), scale

    def from_network(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Network range → full-dose counts."""
        return self.normalizer.invert(x, scale)

    def check_tiles(self, low: torch.Tensor) -> torch.Tensor:
        """(B, 2k+1, h, w) float32 on the networks' device."""
        if low.ndim != 4 or low.shape[1] != self.spec.channels:
            raise ValueError(f"low: expected tiles (B, {self.spec.channels}, h, w) (the slice and {self.spec.context} "
                             f"neighbour(s) each side), found {tuple(low.shape)}")
        return low.to(self.device, torch.float32)


class PairEnhancer(_Normalised):
    """The regression network μθ and (for the posterior method) the residual diffusion model."""

    def __init__(self, regression: LoadedModel, residual: LoadedModel | None = None,
                 count_level: LoadedModel | None = None):
        for model, role in ((regression, "regression"), (residual, "residual"), (count_level, "count_level")):
            if model is not None and model.role != role:
                raise ValueError(f"{role}: expected a {role} snapshot (role {role!r}), found role {model.role!r} "
                                 f"in {model.path}")
        super().__init__(ModelSpec.from_sidecars(regression.meta, None if residual is None else residual.meta,
                                                 str(regression.path)))
        self.regression_model, self.residual_model, self.count_model = regression, residual, count_level
        self.methods = ("mean",) if residual is None else ("mean", "posterior")
        self.models = tuple(m for m in (regression, residual, count_level) if m is not None)
        self._projector: Projector | None = None

    @property
    def device(self) -> torch.device:
        """Where the networks run."""
        return self.regression_model.device

    def settings(self, method: str | None = None, samples: int | None = None,
                 seeds: str | int | Sequence[int] | None = None, sampler: str | None = None,
                 steps: int | None = None, warm_start: float | None = None, batch_size: int = 32,
                 antithetic: bool | None = None, precision: str = "float32", **overrides: Any) -> SamplingSettings:
        """Resolve the settings once: the residual sidecar's `sampling` section, then these arguments."""
        method = _check_method(method or self.methods[-1], self.methods, f"{self.regression_model.path.name}")
        batch_size = check_batch_size(batch_size)
        precision = resolve_precision(precision, self.device)
        if method == "mean":
            return SamplingSettings(method="mean", samples=0, seeds=(), sampler="none", batch_size=batch_size,
                                    precision=precision)
        samples, seed_list = resolve_seeds(samples, seeds, self.spec.default_samples)
        name, opts = sampling_settings(self.spec.sampling, self.residual_model.net, sampler, steps, overrides)
        apply_warm_start(opts, warm_start)
        if antithetic is None:  # on by default where it can pair the samples: an even K, a deterministic solver
            antithetic = samples % 2 == 0 and not opts.get("S_churn")
        if antithetic and samples % 2:
            raise ValueError(f"antithetic: pairs of samples need an even --samples, found {samples}")
        return SamplingSettings(method="posterior", samples=samples, seeds=seed_list, sampler=name, options=opts,
                                warm_start=warm_start, batch_size=batch_size, antithetic=bool(antithetic),
                                precision=precision)

    def dose_level(self, centre: torch.Tensor) -> torch.Tensor:
        """N_low = Σ s_j λ_j of the tile (old snapshots) or its peak density ρ (scan models), (B,)."""
        if self.spec.dose_label == "density":
            return peak_density(centre.float())
        if self._projector is None:
            self._projector = Projector(self.spec.resolution[0], device=centre.device)
        return count_level(centre.float(), self._projector)

    def estimate_counts_per_unit(self, tiles: torch.Tensor, fraction: float) -> float | None:
        """K̂ = median over tiles of ρ̂/ρ_units: ρ̂ from the count-level network (the normalised tile alone, so
        whatever the units), ρ_units the peak density of the tile in its units; None without that network."""
        if self.count_model is None:
            return None
        low = self.check_tiles(tiles)
        f = torch.full((low.shape[0],), float(fraction), device=low.device)
        condition, _ = self.to_network(low, f)
        with torch.no_grad():
            predicted = self.count_model.net(condition)
        rho_hat = density_from_labels(predicted).double()
        rho_units = peak_density(low).double()
        return float((rho_hat / rho_units).median())

    def _labels(self, centre: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
        """The dose labels of the sidecar's kind for centre slices (B, 1, h, w)."""
        if self.spec.dose_label == "density":
            return density_labels(centre)
        return dose_labels(self.dose_level(centre), fraction).to(centre.device)

    def run(self, low: torch.Tensor, fraction: float, settings: SamplingSettings, seeds: Sequence[int]) -> Outputs:
        """{"regression": (B, 1, h, w)} and, for the posterior method, {"samples": (B, S, h, w)} (full-dose counts)."""
        low = self.check_tiles(low)
        f = torch.full((low.shape[0],), float(fraction), device=low.device)
        condition, scale = self.to_network(low, f)
        labels = self._labels(low[:, self.spec.context:self.spec.context + 1], f)
        nets = [m.net for m in (self.regression_model, self.residual_model) if m is not None]
        with network_precision(nets, settings.precision):
            return self._run(condition, scale, labels, settings, seeds)

    def _run(self, condition: torch.Tensor, scale: torch.Tensor, labels: torch.Tensor, settings: SamplingSettings,
             seeds: Sequence[int]) -> Outputs:
        """The networks on normalised tiles (see `run`)."""
        step = settings.batch_size  # inputs per network call, as for the samples
        with torch.no_grad():
            mu = torch.cat([self.regression_model.net(condition[i:i + step], class_labels=labels[i:i + step])
                            for i in range(0, condition.shape[0], step)])
        out = {"regression": self.from_network(mu, scale)}
        if settings.method == "mean" or not seeds:
            return out
        net = self.residual_model.net
        gain = self.spec.residual_std / net.sigma_data
        with torch.no_grad():
            ensemble = posterior_ensemble(lambda c, lab: denoiser(net, condition=c, class_labels=lab),
                                          torch.cat([condition, mu], dim=1), list(seeds), sampler=settings.sampler,
                                          batch_size=settings.batch_size, keep_samples=True, labels=labels,
                                          antithetic=settings.antithetic, **settings.options)
        samples = (mu.unsqueeze(0) + gain * ensemble.samples).clamp_min(-1.0)  # x ≥ −1 is activity ≥ 0
        out["samples"] = torch.cat([self.from_network(x, scale) for x in samples], dim=1)
        return out


class DenoiserEnhancer(_Normalised):
    """One conditional diffusion network of older snapshots (role 'denoiser') sampling p(full dose | low dose)."""

    methods = ("denoiser",)

    def __init__(self, model: LoadedModel):
        if model.mode != "pet" or model.role != "denoiser":
            raise ValueError(f"network: {model.path}: --method denoiser expects a single conditional PET network "
                             f"(mode 'pet', role 'denoiser'), found mode {model.mode!r}, role {model.role!r}")
        super().__init__(ModelSpec.from_sidecars(model.meta, None, str(model.path)))
        self.model = model
        self.models = (model,)

    @property
    def device(self) -> torch.device:
        """Where the network runs."""
        return self.model.device

    def settings(self, method: str | None = None, samples: int | None = None,
                 seeds: str | int | Sequence[int] | None = None, sampler: str | None = None,
                 steps: int | None = None, warm_start: float | None = None, batch_size: int = 32,
                 antithetic: bool | None = None, precision: str = "float32", **overrides: Any) -> SamplingSettings:
        """Resolve the settings once: the sidecar's `sampling` section, then these arguments (independent samples)."""
        _check_method(method or "denoiser", self.methods, "a single denoiser network")
        if antithetic:
            raise ValueError("antithetic: a single denoiser draws independent samples")
        samples, seed_list = resolve_seeds(samples, seeds, self.spec.default_samples)
        name, opts = sampling_settings(self.spec.sampling, self.model.net, sampler, steps, overrides)
        apply_warm_start(opts, warm_start)
        return SamplingSettings(method="denoiser", samples=samples, seeds=seed_list, sampler=name, options=opts,
                                warm_start=warm_start, batch_size=check_batch_size(batch_size),
                                precision=resolve_precision(precision, self.device))

    def estimate_counts_per_unit(self, tiles: torch.Tensor, fraction: float) -> float | None:
        """None: a single denoiser has no count-level estimator."""
        return None

    def dose_level(self, centre: torch.Tensor) -> torch.Tensor:
        """Σ of the tile's counts (reported only: these networks are not told the dose)."""
        return centre.flatten(1).double().sum(dim=1).float()

    def run(self, low: torch.Tensor, fraction: float, settings: SamplingSettings, seeds: Sequence[int]) -> Outputs:
        """{"samples": (B, S, h, w)} in full-dose counts."""
        low = self.check_tiles(low)
        f = torch.full((low.shape[0],), float(fraction), device=low.device)
        condition, scale = self.to_network(low, f)
        net = self.model.net
        with torch.no_grad(), network_precision([net], settings.precision):
            ensemble = posterior_ensemble(lambda c: denoiser(net, condition=c), condition, list(seeds),
                                          image_channels=net.img_channels, sampler=settings.sampler,
                                          batch_size=settings.batch_size, keep_samples=True, **settings.options)
        return {"samples": torch.cat([self.from_network(x, scale) for x in ensemble.samples], dim=1)}


def load_enhancer(path: str | Path | None = None, method: str | None = None,
                  device: str | torch.device | None = None) -> Enhancer:
    """The enhancer of a snapshot (None = the shipped pair): a single denoiser for method 'denoiser', else the
    regression (+ residual, + the count-level network beside them) pair (`load_pair`), which must offer `method`
    when one is given."""
    if method == "denoiser":
        return DenoiserEnhancer(load_model(path, device))
    regression, residual = load_pair(path, device)
    enhancer = PairEnhancer(regression, residual, load_count_estimator((residual or regression).path.parent, device))
    if method is not None:
        alone = "" if residual is not None else " (a regression network alone: use --method mean)"
        _check_method(method, enhancer.methods, f"{regression.path.name}{alone}")
    return enhancer
