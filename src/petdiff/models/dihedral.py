"""Random dihedral transforms (the 8 flips and quarter turns of the square), one per image.

For PET pairs they are exact symmetries of the data distribution: the scanner's angles π·i/n_angles are
mapped onto themselves by a flip or a quarter turn (n_angles even), so (truth, low dose) transformed
together is another pair from the same distribution and no augmentation label is needed.
"""

from __future__ import annotations

import torch


def dihedral(images: torch.Tensor, code: int) -> torch.Tensor:
    """Transform (B, C, H, W) images by element `code` ∈ 0…7: k = code % 4 quarter turns, then a flip if code ≥ 4."""
    out = torch.rot90(images, k=code % 4, dims=(-2, -1))
    return out.flip(-1) if code >= 4 else out


def random_dihedral(*tensors: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Apply one random dihedral element per batch item, the same to every tensor (square images only)."""
    batch = tensors[0].shape[0]
    if tensors[0].shape[-1] != tensors[0].shape[-2]:
        raise ValueError(f"images: expected square images for quarter turns, found {tuple(tensors[0].shape[-2:])}")
    device = generator.device if generator is not None else tensors[0].device
    codes = torch.randint(8, (batch,), generator=generator, device=device).cpu()
    outputs = [t.clone() for t in tensors]
    for code in range(8):
        index = (codes == code).nonzero().flatten().to(tensors[0].device)
        if index.numel() and code:
            for out, t in zip(outputs, tensors):
                out[index] = dihedral(t[index], code)
    return tuple(outputs)
