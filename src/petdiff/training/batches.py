"""Batch sources for the training loop: pairs simulated on the fly, a pair file, or an image dataset.

Each yields (images, condition, class_labels) on the training device, where `images` is what the
diffusion model learns to generate (the full-dose image or the truth in `pet` mode), `condition`
the low-dose image (None in `images` mode) and `class_labels` one-hot labels, the dose labels of
`models.dose` (pet mode with `data.dose_labels`), or None.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from petdiff.data.images import ImageFolderDataset
from petdiff.data.pair_file import PairFileDataset
from petdiff.data.pairs import TARGETS, PairSimulator
from petdiff.data.sampler import InfiniteSampler
from petdiff.data.sources import phantom_source
from petdiff.models.dose import dose_labels, labels_from_density
from petdiff.physics import Projector

Batch = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]


def _check_target(target: str) -> str:
    """The pet-mode training target, validated."""
    if target not in TARGETS:
        raise ValueError(f"data.target: expected one of {TARGETS}, found {target!r}")
    return target


class SimulatedPairBatches:
    """Endless (target, low-dose) batches simulated from phantoms with this rank's generator."""

    def __init__(self, data: Mapping[str, Any], batch: int, device: torch.device, generator: torch.Generator):
        self.source = phantom_source(data["phantoms"], int(data["resolution"]))
        counts, fraction = data["counts"], data["fraction"]
        self.simulator = PairSimulator(
            Projector(int(data["resolution"]), device=device),
            counts=counts if isinstance(counts, (int, float)) else tuple(counts),
            fraction=fraction if isinstance(fraction, (int, float)) else tuple(fraction),
            n_iter=int(data["n_iter"]),
            alpha=data.get("alpha"),
            normalization=data["normalization"],
            random_contrast=float(data.get("random_contrast") or 0.0),
        )
        self.target = _check_target(data["target"])
        self.with_dose = bool(data.get("dose_labels"))
        self.batch, self.device, self.generator = batch, device, generator

    def __iter__(self) -> Iterator[Batch]:
        while True:
            activity, labels = self.source.draw(self.batch, self.generator, self.device)
            pairs = self.simulator(activity, labels, self.generator)
            dose = dose_labels(pairs.counts * pairs.fraction, pairs.fraction) if self.with_dose else None
            yield pairs.target(self.target), pairs.low_dose, dose

    def state_dict(self) -> None:
        """Nothing beyond the generator, whose state the checkpoint stores."""
        return None


class DatasetBatches:
    """Endless batches from a map-style dataset through the rank-disjoint InfiniteSampler."""

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        batch: int,
        device: torch.device,
        rank: int,
        world_size: int,
        seed: int,
        target: str = "full_dose",
        with_dose: bool = False,
    ):
        self.dataset, self.batch, self.device = dataset, batch, device
        self.sampler = InfiniteSampler(len(dataset), rank=rank, world_size=world_size, seed=seed)
        self.target = _check_target(target)
        self.with_dose = with_dose  # True / "counts": (log10 N_low − 5, f); "density": the scan models' ρ label

    def __iter__(self) -> Iterator[Batch]:
        indices = iter(self.sampler)
        while True:
            items = [self.dataset[next(indices)] for _ in range(self.batch)]
            yield self._collate(items)

    def _collate(self, items: list) -> Batch:
        """Stack items of a PairFileDataset (dicts) or an ImageFolderDataset ((image, label) or image)."""
        if isinstance(items[0], dict):
            images = torch.stack([it[self.target] for it in items]).to(self.device)
            condition = torch.stack([it["low_dose"] for it in items]).to(self.device)
            if not self.with_dose:
                return images, condition, None
            if self.with_dose == "density":
                if "density" not in items[0]:
                    raise ValueError("data.dose_labels: 'density' needs a scan pair file (petdiff simulate "
                                     "--phantoms scans), found a pair file without the 'density' field")
                density = torch.stack([it["density"] for it in items])
                return images, condition, labels_from_density(density).to(self.device)
            counts = torch.stack([it["counts"] for it in items])
            fraction = torch.stack([it["fraction"] for it in items])
            return images, condition, dose_labels(counts * fraction, fraction).to(self.device)
        if isinstance(items[0], (tuple, list)):
            images = torch.stack([torch.as_tensor(it[0]) for it in items]).to(self.device)
            labels = torch.stack([torch.as_tensor(it[1]) for it in items]).to(self.device)
            return images, None, labels if labels.numel() and labels.shape[-1] > 0 else None
        return torch.stack([torch.as_tensor(it) for it in items]).to(self.device), None, None

    def state_dict(self) -> dict:
        """The sampler's position (exact resume)."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the index stream where a saved run stopped."""
        self.sampler.load_state_dict(state)


def informative_pairs(dataset: PairFileDataset, min_density: float | None) -> torch.utils.data.Dataset:
    """The pairs whose low-dose peak holds at least `min_density` counts per pixel (all when None).

    A patch whose low dose recorded (almost) nothing has no scale to normalise by, so its target lands far outside the
    network range (measured: 0.5 % of the scan patches below 1 count per pixel, with targets up to 67 instead of ≤ 10);
    it teaches nothing and its loss swamps the batch.
    """
    if min_density is None:
        return dataset
    if "density" not in dataset.arrays:
        raise ValueError(f"data.min_density: needs a pair file with the 'density' field, found {dataset.path} without")
    keep = np.flatnonzero(np.asarray(dataset.arrays["density"]) >= float(min_density))
    if keep.size == 0:
        raise ValueError(f"data.min_density: no pair of {dataset.path} reaches {min_density} counts per pixel")
    return torch.utils.data.Subset(dataset, keep.tolist())


def make_batches(
    data: Mapping[str, Any],
    batch: int,
    device: torch.device,
    rank: int,
    world_size: int,
    seed: int,
    generator: torch.Generator,
) -> SimulatedPairBatches | DatasetBatches:
    """The batch source the config's `data` section asks for."""
    mode = data["mode"]
    if mode == "pet":
        if data.get("path"):
            dose = data.get("dose_labels")
            pairs = informative_pairs(PairFileDataset(data["path"]), data.get("min_density"))
            return DatasetBatches(pairs, batch, device, rank, world_size, seed, data["target"],
                                  with_dose=dose if dose == "density" else bool(dose))
        return SimulatedPairBatches(data, batch, device, generator)
    if mode == "images":
        value_range = tuple(data["value_range"]) if data.get("value_range") is not None else None
        dataset = ImageFolderDataset(data["path"], resolution=data.get("resolution"), value_range=value_range)
        return DatasetBatches(dataset, batch, device, rank, world_size, seed)
    raise ValueError(f"data.mode: expected 'pet' or 'images', found {mode!r}")
