"""Turn the user's `generator` argument (None, a seed, or a torch.Generator) into a torch.Generator."""

from __future__ import annotations

import torch


def resolve_generator(
    generator: torch.Generator | int | None, device: torch.device | str | None = None
) -> torch.Generator:
    """A torch.Generator on `device`: the given one, one seeded with the given int, or a fresh random one."""
    if isinstance(generator, torch.Generator):
        if device is not None and torch.device(device).type != generator.device.type:
            raise ValueError(
                f"generator: expected a torch.Generator on device type {torch.device(device).type!r}, "
                f"found one on {generator.device.type!r}"
            )
        return generator
    if generator is not None and (isinstance(generator, bool) or not isinstance(generator, int)):
        raise ValueError(
            f"generator: expected None, an int seed or a torch.Generator, found {type(generator).__name__}"
        )
    g = torch.Generator(device=device if device is not None else "cpu")
    if generator is None:
        g.seed()
    else:
        g.manual_seed(int(generator))
    return g
