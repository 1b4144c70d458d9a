"""An endless, shuffled, rank-disjoint and resumable index stream for a DataLoader."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

_MASK64 = (1 << 64) - 1


def _pass_seed(seed: int, epoch: int) -> int:
    """Seed of the permutation of one pass: a splitmix64 hash of (seed, epoch), so nearby pairs are unrelated."""
    # A plain seed + epoch would make run (seed=1, pass 0) replay run (seed=0, pass 1).
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _check_int(name: str, value: Any, minimum: int) -> int:
    """Require an int (not bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, found {value!r}")
    return value


class InfiniteSampler(torch.utils.data.Sampler[int]):
    """Endless index stream: global position p is slot p mod n of permutation π_(seed, ⌊p/n⌋), given to rank p mod W.

    Every pass over the data (n consecutive global positions) is one fresh permutation, so across all ranks each
    index is seen exactly once per pass. `position` counts the global positions consumed by all ranks together
    (it advances by `world_size` per index this rank yields), which is what `state_dict()` saves; a run resumed
    from it, even with another world size, continues the same global stream. A DataLoader prefetches, so the
    sampler runs ahead of the training loop: to resume exactly, save `{"position": images_trained, ...}`.
    """

    def __init__(self, dataset_len: int, rank: int = 0, world_size: int = 1, shuffle: bool = True, seed: int = 0):
        self.dataset_len = _check_int("dataset_len", dataset_len, 1)
        self.world_size = _check_int("world_size", world_size, 1)
        self.rank = _check_int("rank", rank, 0)
        if self.rank >= self.world_size:
            raise ValueError(f"rank: expected 0 <= rank < world_size = {world_size}, found {rank}")
        if not isinstance(shuffle, bool):
            raise ValueError(f"shuffle: expected a bool, found {shuffle!r}")
        self.shuffle = shuffle
        self.seed = _check_int("seed", seed, 0)
        self.position = 0

    def permutation(self, epoch: int) -> list[int]:
        """The order of pass `epoch` (identity when shuffle=False)."""
        if not self.shuffle:
            return list(range(self.dataset_len))
        generator = torch.Generator().manual_seed(_pass_seed(self.seed, epoch))
        return torch.randperm(self.dataset_len, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's indices forever, starting at the saved position (and advancing it)."""
        epoch, order = -1, []
        while True:
            p = self.position + self.rank
            if p // self.dataset_len != epoch:
                epoch = p // self.dataset_len
                order = self.permutation(epoch)
            # Advance before yielding so that state_dict() taken after next() already counts this index.
            self.position += self.world_size
            yield order[p % self.dataset_len]

    def state_dict(self) -> dict[str, Any]:
        """Plain dict from which `load_state_dict` resumes the same stream."""
        return {"position": self.position, "seed": self.seed, "dataset_len": self.dataset_len, "shuffle": self.shuffle}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the stream at `state["position"]`; seed, dataset_len and shuffle must match this sampler."""
        if not isinstance(state, Mapping) or "position" not in state:
            raise ValueError(f"sampler state: expected a dict with key 'position', found {state!r}")
        for key in ("seed", "dataset_len", "shuffle"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"sampler state: {key} = {state[key]!r} does not match this sampler's {key} = "
                    f"{getattr(self, key)!r}; the stream would not continue"
                )
        self.position = _check_int("sampler state position", state["position"], 0)
