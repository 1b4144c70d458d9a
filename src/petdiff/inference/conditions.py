"""Per-seed low-dose conditions for `generate` with PET models: each seed simulates (or picks) its own scan.

Seed n draws its phantom, dose settings, Poisson counts and thinning from a torch.Generator seeded with
condition_seed(n), a bijective mix of n, so a seed's condition does not depend on the batch or the rank it
runs in, and its noise stream differs from the sampler's latent noise (which uses seed n itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import torch

from petdiff.data.pair_file import PairFileDataset
from petdiff.data.pairs import Pairs, PairSimulator
from petdiff.data.sources import phantom_source
from petdiff.inference.model import LoadedModel
from petdiff.physics import Projector
from petdiff.recon import MLEM_ITERATIONS

_MASK64 = (1 << 64) - 1


def condition_seed(seed: int) -> int:
    """SplitMix64: z = n + φ·2⁶⁴, z ← (z ⊕ z≫30)·0xBF58476D1CE4E5B9, z ← (z ⊕ z≫27)·0x94D049BB133111EB, z ⊕ z≫31.

    Arithmetic is modulo 2⁶⁴ and every step is invertible, so distinct seeds get distinct condition seeds.
    """
    z = (int(seed) + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def condition_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """The generator of seed n's condition (and class label): seeded with condition_seed(n) on `device`."""
    return torch.Generator(device).manual_seed(condition_seed(seed))


def cat_pairs(parts: Sequence[Pairs]) -> Pairs:
    """Concatenate batches of pairs along the batch axis."""
    return Pairs(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Pairs)})


class ConditionSource:
    """seeds → Pairs (normalised low-dose conditions with their full-dose / truth images), one scan per seed.

    Either simulated on the fly (`simulator` + a phantom `source` with .draw(n, generator, device)) or
    rows of a pre-simulated pair file (`pairs`), picked uniformly by the seed's generator.
    """

    def __init__(
        self,
        resolution: int,
        normalization: str,
        simulator: PairSimulator | None = None,
        source: Any = None,
        pairs: PairFileDataset | None = None,
    ) -> None:
        if (pairs is None) == (simulator is None or source is None):
            raise ValueError("conditions: expected either a simulator with a phantom source, or a pair file")
        self.resolution = resolution
        self.normalization = normalization
        self.simulator, self.source, self.pairs = simulator, source, pairs

    def _one(self, seed: int, device: torch.device) -> Pairs:
        """The pair of one seed."""
        generator = condition_generator(seed, device)
        if self.pairs is not None:
            index = int(torch.randint(len(self.pairs), (1,), generator=generator, device=device))
            row = self.pairs[index]
            return Pairs(**{f.name: row[f.name].float()[None].to(device) for f in fields(Pairs)})
        activity, labels = self.source.draw(1, generator, device)
        return self.simulator(activity, labels, generator)

    def __call__(self, seeds: Sequence[int], device: torch.device | str) -> Pairs:
        """One pair per seed, on `device`."""
        device = torch.device(device)
        return cat_pairs([self._one(seed, device) for seed in seeds])


def _plain(value: Any) -> Any:
    """Config lists (ListConfig) as plain lists; numbers unchanged."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


def conditions_from_config(data: Mapping[str, Any], model: LoadedModel) -> ConditionSource:
    """A ConditionSource from a config's `data` section (phantoms or path, counts, fraction, n_iter, alpha, ...).

    The section must describe the model's data: mode 'pet', the network's resolution and normalisation.
    """
    where = "config data"
    if data.get("mode") != "pet":
        raise ValueError(f"{where}.mode: the network {model.path.name} is a PET model (mode 'pet'), "
                         f"found {data.get('mode')!r}; use a pet config (e.g. -cn=pet_cpu_64)")
    resolution = model.resolution[0]
    if data.get("resolution") != resolution:
        raise ValueError(
            f"{where}.resolution: expected {resolution} (the network's), found {data.get('resolution')!r}"
        )
    normalization = model.meta["normalization"]
    if data.get("normalization") != normalization:
        raise ValueError(
            f"{where}.normalization: expected {normalization!r} (the network's sidecar), "
            f"found {data.get('normalization')!r}"
        )
    if data.get("path"):
        pairs = PairFileDataset(data["path"])
        if pairs.resolution != resolution or pairs.meta.get("normalization", normalization) != normalization:
            raise ValueError(
                f"{data['path']}: expected pairs at resolution {resolution} with normalization {normalization!r}, "
                f"found {pairs.resolution} and {pairs.meta.get('normalization')!r}"
            )
        return ConditionSource(resolution, normalization, pairs=pairs)
    device = model.device
    simulator = PairSimulator(
        Projector(resolution, device=device),
        counts=_plain(data.get("counts", 1e6)),
        fraction=_plain(data.get("fraction", 0.25)),
        n_iter=data.get("n_iter", MLEM_ITERATIONS),
        alpha=data.get("alpha"),
        normalization=normalization,
        random_contrast=float(data.get("random_contrast") or 0.0),
    )
    source = phantom_source(str(data.get("phantoms", "procedural")), resolution)
    return ConditionSource(resolution, normalization, simulator=simulator, source=source)
