"""Training and validation patches from a user's pairs, normalised the way the networks see a tile at inference.

A patch is a P×P crop (P = the network's training size, 64) of one slice of a pair on the networks' grid: the
low-dose slice with its k neighbours each side (`with_context`, ends repeated) and the full-dose slice. Crops are
centred on the object (a pixel of the full dose above 5 % of its maximum) 9 times in 10, anywhere otherwise; slices
smaller than P are zero-padded. Normalisation (`Normalizer`, "quantitative"): s = max(smooth(low_centre / f)),
condition = 2·low/(s·f) − 1 (all 2k+1 channels), target = 2·full/s − 1. Labels: the scan models' peak count density
of the patch (`density_labels`), or the first pair's (log10 N_low − 5, f) with N_low = Σ s_j x_j over the patch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from petdiff.data.normalization import Normalizer
from petdiff.finetune.pairs import ScanPair
from petdiff.inference.context import with_context
from petdiff.models.dose import density_labels, dose_labels
from petdiff.physics import Projector

OBJECT_LEVEL = 0.05
CENTRED_SHARE = 0.9


@dataclass(frozen=True)
class PatchSpec:
    """How the networks see a patch: size P, context k, label kind ('density' | 'counts')."""

    size: int
    context: int
    labels: str


@dataclass
class Patches:
    """A batch in network units: target (B,1,P,P), condition (B,2k+1,P,P), labels (B,L)."""

    target: torch.Tensor
    condition: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device) -> Patches:
        """The batch on `device`."""
        return Patches(self.target.to(device), self.condition.to(device), self.labels.to(device))


class PatchSource:
    """Random patches (training) or a fixed set (validation) from a list of pairs."""

    def __init__(self, pairs: Sequence[ScanPair], spec: PatchSpec):
        if not pairs:
            raise ValueError("pairs: expected at least one checked pair, found none")
        self.spec = spec
        self.fractions = [p.fraction for p in pairs]
        self.lows = [_pad(with_context(p.low, spec.context), spec.size) for p in pairs]
        self.fulls = [_pad(p.full, spec.size) for p in pairs]
        self.centres = [(full[:, 0] > OBJECT_LEVEL * full.amax()).nonzero() for full in self.fulls]
        self.normalizer = Normalizer("quantitative")
        self.projector = Projector(spec.size) if spec.labels == "counts" else None

    def draw(self, n: int, generator: torch.Generator) -> Patches:
        """n random patches (pair, slice, position drawn with `generator`)."""
        picks = []
        for _ in range(n):
            i = int(torch.randint(len(self.lows), (1,), generator=generator))
            centres = self.centres[i]
            if len(centres) and float(torch.rand(1, generator=generator)) < CENTRED_SHARE:
                s, r, c = centres[int(torch.randint(len(centres), (1,), generator=generator))].tolist()
            else:
                s = int(torch.randint(self.lows[i].shape[0], (1,), generator=generator))
                r, c = (int(torch.randint(d, (1,), generator=generator)) for d in self.lows[i].shape[-2:])
            picks.append((i, s, r, c))
        return self.patches(picks)

    def fixed(self, n: int, seed: int) -> Patches:
        """n patches drawn from a generator seeded with `seed`: the same set every time (validation)."""
        return self.draw(n, torch.Generator().manual_seed(seed))

    def patches(self, picks: Sequence[tuple[int, int, int, int]]) -> Patches:
        """Crops centred (clamped to the slice) at (pair, slice, row, column), normalised, with their labels."""
        p, lows, fulls, fractions = self.spec.size, [], [], []
        for i, s, r, c in picks:
            h, w = self.lows[i].shape[-2:]
            top, left = min(max(r - p // 2, 0), h - p), min(max(c - p // 2, 0), w - p)
            lows.append(self.lows[i][s, :, top:top + p, left:left + p])
            fulls.append(self.fulls[i][s, :, top:top + p, left:left + p])
            fractions.append(self.fractions[i])
        low, full = torch.stack(lows), torch.stack(fulls)
        f = torch.tensor(fractions, dtype=torch.float32)
        k = self.spec.context
        scale = self.normalizer.scale(low[:, k:k + 1], f)
        condition = self.normalizer.normalize(low, scale * f)
        target = self.normalizer.normalize(full, scale)
        if self.spec.labels == "density":
            labels = density_labels(low)
        else:
            counts = (low[:, k:k + 1] * self.projector.sensitivity).flatten(1).sum(1).clamp_min(1.0)
            labels = dose_labels(counts, f)
        return Patches(target, condition, labels)

    def stream(self, batch: int, generator: torch.Generator) -> Iterator[Patches]:
        """Endless random batches."""
        while True:
            yield self.draw(batch, generator)


def _pad(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad (N, C, H, W) to at least size×size (centred)."""
    h, w = images.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if not ph and not pw:
        return images
    return F.pad(images, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
