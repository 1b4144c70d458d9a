"""Per-seed Gaussian noise: each batch element draws from its own generator (NVlabs/edm's idea)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from petdiff.utils.seeds import parse_int_list

_SEED_LIMIT = 2**64  # torch.Generator.manual_seed accepts 0 … 2^64 − 1


def parse_seeds(seeds: str | int | Sequence[int], name: str = "seeds", distinct: bool = False) -> list[int]:
    """Validate a seed list ('0-63,100', 5, or [3, 7]) into integers in [0, 2^64) (pairwise distinct if asked)."""
    if isinstance(seeds, bool) or not isinstance(seeds, (str, int, list, tuple)):
        raise ValueError(f"{name}: expected a list of integers or a string like '0-63', found {type(seeds).__name__}")
    if isinstance(seeds, (list, tuple)):
        bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int)]
        if bad:
            raise ValueError(f"{name}: expected integers, found {bad[0]!r} ({type(bad[0]).__name__})")
    out = parse_int_list(seeds) if not isinstance(seeds, (list, tuple)) else list(seeds)
    if not out:
        raise ValueError(f"{name}: expected at least one seed, found an empty list")
    out_of_range = [s for s in out if not 0 <= s < _SEED_LIMIT]
    if out_of_range:
        raise ValueError(f"{name}: expected seeds in [0, 2^64), found {out_of_range[0]}")
    if distinct and len(set(out)) != len(out):
        dup = next(s for s in out if out.count(s) > 1)
        raise ValueError(f"{name}: expected distinct seeds (a repeated seed repeats its sample), found {dup} twice")
    return out


class StackedRandomGenerator:
    """One torch.Generator per batch element, so a sample's noise depends only on its own seed."""

    def __init__(self, device: torch.device | str, seeds: str | int | Sequence[int]):
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            # pin "cuda" to a concrete index so randn_like can compare devices exactly
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.seeds = parse_seeds(seeds)
        self.generators = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]

    def __len__(self) -> int:
        """Number of seeds (= the batch size this generator serves)."""
        return len(self.generators)

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal tensor of `shape` (shape[0] == len(seeds)); row b comes from generator b."""
        shape = tuple(int(s) for s in shape)
        if not shape or shape[0] != len(self.generators):
            raise ValueError(
                f"shape: expected a leading batch dimension equal to the {len(self.generators)} seed(s), found {shape}"
            )
        return torch.stack(
            [torch.randn(shape[1:], generator=g, device=self.device, dtype=dtype) for g in self.generators]
        )

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal tensor shaped like `x` (same dtype; x must live on this generator's device)."""
        if x.device != self.device:
            raise ValueError(f"x: expected a tensor on {self.device} (the generators' device), found {x.device}")
        return self.randn(x.shape, dtype=x.dtype)
