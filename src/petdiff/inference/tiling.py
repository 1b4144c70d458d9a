"""Sliding-window inference with overlapping tiles and smooth blending (after MONAI's SlidingWindowInferer).

Tiles of size (th, tw) start every (1 − overlap)·tile pixels, the last one flush with the border; each
output pixel is Σ_t w_t(p) · fn(tile_t)(p) / Σ_t w_t(p) with a window w that is largest at the tile centre
and falls off towards its edges (Gaussian, σ = tile/8, or cosine), so tiles fade into each other without a
seam. An image smaller than a tile is zero-padded (centred) to the tile and cropped back. The tile function
may return several outputs at once (a dict), each with its own number of channels: all are blended alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from petdiff.utils.validation import check_image_batch

WINDOWS = ("gaussian", "cosine")
TileOutput = torch.Tensor | Mapping[str, torch.Tensor]


def _starts(length: int, tile: int, overlap: float) -> list[int]:
    """Tile starts along one axis: every ⌊tile·(1 − overlap)⌋ pixels, the last flush with the end."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1.0 - overlap)))
    n = math.ceil((length - tile) / stride) + 1
    return sorted({min(i * stride, length - tile) for i in range(n)})


def tile_count(shape: tuple[int, int], tile: int | tuple[int, int], overlap: float = 0.5) -> int:
    """How many tiles `sliding_window` runs per image of `shape` (H, W) (1 when it fits in one tile)."""
    th, tw = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    h, w = max(shape[0], th), max(shape[1], tw)
    return len(_starts(h, th, overlap)) * len(_starts(w, tw, overlap))


def window(size: tuple[int, int], kind: str = "gaussian", sigma_scale: float = 0.125,
           floor: float = 1e-12) -> torch.Tensor:
    """Blending weights (h, w) > 0, 1 at the centre: Gaussian (σ = sigma_scale·size) or a raised cosine.

    `floor` only keeps the weights positive: a larger floor would flatten the edge rows of tiles along the
    image border to one value and bring back a step there.
    """
    if kind not in WINDOWS:
        raise ValueError(f"window: expected one of {', '.join(WINDOWS)}, found {kind!r}")
    axes = []
    for n in size:
        x = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
        if kind == "gaussian":
            axes.append(torch.exp(-0.5 * (x / (sigma_scale * n)) ** 2))
        else:
            axes.append(torch.cos(math.pi * x / (n + 1)) ** 2)
    w = axes[0][:, None] * axes[1][None, :]
    return (w / w.max()).clamp_min(floor)


def sliding_window(fn: Callable[[torch.Tensor], TileOutput], images: torch.Tensor, tile: int | tuple[int, int],
                   overlap: float = 0.5, kind: str = "gaussian", batch_size: int = 8) -> TileOutput:
    """fn applied to overlapping tiles of images (N, C, H, W), each of its outputs blended back to (N, C', H, W).

    `fn(tiles (B, C, th, tw))` returns one tensor (B, C', th, tw) or a dict of them (several outputs at once,
    e.g. the regression and the samples; C' may differ from C and between outputs); the result has the same
    form. `overlap` in [0.25, 1) of the tile; an image that fits in one tile is padded to it and passed whole.
    """
    check_image_batch("images", images, channels=None)
    th, tw = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    if th < 1 or tw < 1:
        raise ValueError(f"tile: expected positive sizes, found {tile!r}")
    if not 0.25 <= overlap < 1.0:
        raise ValueError(f"overlap: expected a fraction in [0.25, 1), found {overlap!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, found {batch_size!r}")
    n, _, h, w = images.shape
    pad_h, pad_w = max(0, th - h), max(0, tw - w)
    top, left = pad_h // 2, pad_w // 2
    x = F.pad(images, (left, pad_w - left, top, pad_h - top)) if pad_h or pad_w else images
    hp, wp = x.shape[-2:]
    corners = [(i, j) for i in _starts(hp, th, overlap) for j in _starts(wp, tw, overlap)]
    acc_dtype = torch.float32 if x.device.type == "mps" else torch.float64  # float64 keeps identity exact
    weight = window((th, tw), kind).to(x.device, acc_dtype)
    norm = torch.zeros(hp, wp, dtype=acc_dtype, device=x.device)
    for i, j in corners:
        norm[i:i + th, j:j + tw] += weight
    single = False
    out: dict[str, torch.Tensor] = {}
    jobs = [(k, i, j) for k in range(n) for i, j in corners]
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        tiles = torch.stack([x[k, :, i:i + th, j:j + tw] for k, i, j in chunk])
        result = fn(tiles)
        single = isinstance(result, torch.Tensor)
        parts = {"": result} if single else result
        if not isinstance(parts, Mapping):
            raise ValueError(f"fn: expected a tensor or a dict of tensors back, found {type(result).__name__}")
        for name, value in parts.items():
            if not isinstance(value, torch.Tensor) or value.ndim != 4 or value.shape[0] != len(chunk) \
                    or tuple(value.shape[-2:]) != (th, tw):
                found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"fn: expected output {name or 'tiles'} of shape ({len(chunk)}, C, {th}, {tw}), "
                                 f"found {found}")
            if name not in out:
                out[name] = torch.zeros(n, value.shape[1], hp, wp, dtype=acc_dtype, device=x.device)
            for (k, i, j), r in zip(chunk, value):
                out[name][k, :, i:i + th, j:j + tw] += r.to(x.device, acc_dtype) * weight
    blended = {name: (acc / norm).to(images.dtype)[:, :, top:top + h, left:left + w] for name, acc in out.items()}
    return blended[""] if single else blended


def object_tiles(stacks: torch.Tensor, tile: tuple[int, int], keep: float = 0.2) -> list[torch.Tensor]:
    """Per stack (N, C, H, W): its half-overlapping tiles whose centre-channel peak reaches `keep` × the stack's peak.

    The tiles the scan models were trained on (64×64 patches of the object, not of the air around it); a slice
    smaller than a tile is zero-padded to it. Returns one (M_i, C, th, tw) tensor per stack (M_i = 0 for an empty one).
    """
    th, tw = tile
    k = stacks.shape[1] // 2
    pad_h, pad_w = max(0, th - stacks.shape[-2]), max(0, tw - stacks.shape[-1])
    stacks = F.pad(stacks, (0, pad_w, 0, pad_h))
    rows, cols = _starts(stacks.shape[-2], th, 0.5), _starts(stacks.shape[-1], tw, 0.5)
    out = []
    for stack in stacks:
        tiles = torch.stack([stack[:, r : r + th, c : c + tw] for r in rows for c in cols])
        peaks = tiles[:, k].flatten(1).amax(dim=1)
        out.append(tiles[peaks > keep * peaks.amax()] if bool(peaks.amax() > 0) else tiles[:0])
    return out
