"""Sampling one image per seed (NVlabs/edm `generate.py`): unconditional, class-conditional or PET-conditional.

Seed n alone decides its sample: the latent and churn noise come from StackedRandomGenerator([.., n, ..]),
its class label and its PET condition from condition_generator(n). So the images of a seed are the same
whatever the batch size, the other seeds, or the number of ranks the seeds are split over.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from petdiff.data.pairs import Pairs
from petdiff.diffusion import StackedRandomGenerator, parse_seeds, sample, sampler_options
from petdiff.diffusion.guidance import denoiser, guided_denoiser
from petdiff.inference.conditions import ConditionSource, cat_pairs, condition_generator
from petdiff.inference.model import LoadedModel
from petdiff.inference.settings import sampling_settings


@dataclass(frozen=True)
class Generated:
    """Samples (N, C, H, W) in the network's range with their seeds, class labels (N,) and PET pairs (on the CPU)."""

    images: torch.Tensor
    seeds: tuple[int, ...]
    labels: torch.Tensor | None = None  # class index per seed (class-conditional networks)
    pairs: Pairs | None = None  # the normalised low-dose conditions, full-dose and truth images (PET networks)


def class_labels(
    model: LoadedModel, seeds: Sequence[int], class_idx: int | None = None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(one-hot (B, label_dim), index (B,)) per seed: `class_idx` for all, else uniform from the seed's generator."""
    label_dim = int(getattr(model.net, "label_dim", 0) or 0)
    if not label_dim:
        if class_idx is not None:
            raise ValueError(f"class_idx: the network has no class labels (label_dim = 0), found {class_idx!r}")
        return None
    device = model.device
    if class_idx is not None:
        if isinstance(class_idx, bool) or not isinstance(class_idx, int) or not 0 <= class_idx < label_dim:
            raise ValueError(f"class_idx: expected an integer in [0, {label_dim}), found {class_idx!r}")
        index = torch.full((len(seeds),), class_idx, dtype=torch.long, device=device)
    else:
        index = torch.cat([
            torch.randint(label_dim, (1,), generator=condition_generator(s, device), device=device) for s in seeds
        ])
    return torch.nn.functional.one_hot(index, label_dim).float(), index


def sample_seeds(
    model: LoadedModel,
    seeds: Sequence[int],
    sampler: str,
    opts: dict[str, Any],
    condition: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    guidance: float = 1.0,
) -> torch.Tensor:
    """One sample per seed (B, C, H, W): x ~ sampler(D(·; σ, condition, labels)) from latents of the seeds."""
    net, device = model.net, model.device
    rnd = StackedRandomGenerator(device, seeds)
    latents = rnd.randn((len(seeds), net.img_channels, *model.resolution))
    if labels is not None:
        denoise = guided_denoiser(net, labels, guidance, condition=condition)
    elif float(guidance) != 1.0:
        raise ValueError(f"guidance: classifier-free guidance needs class labels (label_dim > 0), found w={guidance}")
    else:
        denoise = denoiser(net, condition=condition)
    noise = {"noise": rnd} if "noise" in sampler_options(sampler) else {}
    return sample(denoise, latents, sampler, **noise, **opts)


def generate(
    model: LoadedModel,
    seeds: str | int | Sequence[int],
    *,
    conditions: ConditionSource | None = None,
    defaults: Mapping[str, Any] | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    batch_size: int = 16,
    class_idx: int | None = None,
    guidance: float = 1.0,
    progress: bool = False,
    **sampler_opts: Any,
) -> Generated:
    """One image per seed, `batch_size` seeds per network batch; PET models need `conditions` (one scan per seed).

    Sampler defaults come from `defaults` (a config's `sampling` section) or else the snapshot's `sampling`
    section (else EDM Heun, 32 steps, no churn); `sampler`, `steps` and `sampler_opts` override them.
    """
    seed_list = parse_seeds(seeds, distinct=True)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, found {batch_size!r}")
    if model.mode == "pet" and conditions is None:
        raise ValueError(f"conditions: the PET network {model.path.name} needs low-dose conditions, found None")
    if model.mode != "pet" and conditions is not None:
        raise ValueError(f"conditions: the network {model.path.name} is unconditional (mode {model.mode!r})")
    section = model.meta.get("sampling") if defaults is None else defaults
    name, opts = sampling_settings(section, model.net, sampler, steps, sampler_opts)
    images, labels, pairs = [], [], []
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(total=len(seed_list), unit="image", disable=not progress, leave=False))
        for start in range(0, len(seed_list), batch_size):
            chunk = seed_list[start : start + batch_size]
            chunk_pairs = conditions(chunk, model.device) if conditions is not None else None
            drawn = class_labels(model, chunk, class_idx)
            condition = chunk_pairs.low_dose if chunk_pairs is not None else None
            x = sample_seeds(model, chunk, name, opts, condition, None if drawn is None else drawn[0], guidance)
            images.append(x.cpu())
            if drawn is not None:
                labels.append(drawn[1].cpu())
            if chunk_pairs is not None:
                pairs.append(chunk_pairs.to("cpu"))
            bar.update(len(chunk))
    return Generated(
        images=torch.cat(images),
        seeds=tuple(seed_list),
        labels=torch.cat(labels) if labels else None,
        pairs=cat_pairs(pairs) if pairs else None,
    )


def rank_seeds(seeds: Sequence[int], batch_size: int, rank: int, world_size: int) -> list[int]:
    """This rank's share: the seeds in batches rank, rank + W, rank + 2W, ... of `batch_size` consecutive seeds."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank: expected 0 <= rank < world_size = {world_size}, found {rank}")
    batches = [list(seeds[i : i + batch_size]) for i in range(0, len(seeds), batch_size)]
    return [s for batch in batches[rank::world_size] for s in batch]
