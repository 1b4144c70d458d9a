"""The ADM UNet of Dhariwal & Nichol (2021), following NVlabs/edm's reimplementation (``DhariwalUNet``).

Stages: stage s ∈ {0, …, len(channel_mult)−1} works at resolution img_resolution / 2^s with
model_channels·channel_mult[s] channels. ``attn_stages`` lists the *stage indices* whose residual blocks carry
self-attention (NVlabs/edm names the same thing by resolution, ``attn_resolutions``). For the reference PET network
(64×64, channel_mult [1, 2, 2, 2]) ``attn_stages=[2, 3]`` means attention at 16×16 and 8×8 in every encoder and
decoder block of those stages; the bottleneck's first block always has attention, as in ADM. This is the reading
that reproduces the reference parameter count (57.09 M); EDM's ``attn_resolutions=[32, 16, 8]`` would be stages
[1, 2, 3].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from petdiff.models.layers import PositionalEmbedding, conv2d, group_norm, kaiming_normal_, linear
from petdiff.models.unet_block import UNetBlock


def as_resolution(img_resolution: int | Sequence[int], name: str = "img_resolution") -> tuple[int, int]:
    """Normalise an int or (H, W) pair to a (H, W) tuple of positive ints."""
    if isinstance(img_resolution, int) and not isinstance(img_resolution, bool):
        h = w = img_resolution
    elif isinstance(img_resolution, Sequence) and len(img_resolution) == 2:
        h, w = (int(v) for v in img_resolution)
    else:
        raise ValueError(f"{name}: expected an int or an (H, W) pair, found {img_resolution!r}")
    if h <= 0 or w <= 0:
        raise ValueError(f"{name}: expected positive sizes, found {img_resolution!r}")
    return h, w


class DhariwalUNet(torch.nn.Module):
    """ADM UNet F(x; c_noise, class_labels, augment_labels): (B, in, H, W) → (B, out, H, W); outputs 0 at init."""

    def __init__(
        self,
        img_resolution: int | Sequence[int],
        in_channels: int,
        out_channels: int,
        label_dim: int = 0,
        augment_dim: int = 0,
        model_channels: int = 128,
        channel_mult: Sequence[int] = (1, 2, 3, 4),
        channel_mult_emb: int = 4,
        num_blocks: int = 3,
        attn_stages: Sequence[int] = (2, 3),
        dropout: float = 0.10,
        label_dropout: float = 0.0,
    ):
        super().__init__()
        res_h, res_w = as_resolution(img_resolution)
        channel_mult = [int(m) for m in channel_mult]
        attn_stages = sorted({int(s) for s in attn_stages})
        _check_architecture(res_h, res_w, in_channels, out_channels, model_channels, channel_mult, num_blocks,
                            attn_stages, dropout, label_dropout, label_dim, augment_dim)
        self.img_resolution = (res_h, res_w)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.label_dim = label_dim
        self.augment_dim = augment_dim
        self.label_dropout = float(label_dropout)
        emb_channels = model_channels * channel_mult_emb
        block_kwargs = dict(emb_channels=emb_channels, channels_per_head=64, dropout=dropout)

        # Mapping network: noise (and augmentation) features → embedding, class labels added after layer 1.
        self.map_noise = PositionalEmbedding(model_channels)
        self.map_augment = linear(augment_dim, model_channels, bias=False, gain=0.0) if augment_dim else None
        self.map_layer0 = linear(model_channels, emb_channels)
        self.map_layer1 = linear(emb_channels, emb_channels)
        self.map_label = None
        if label_dim:
            self.map_label = torch.nn.Linear(label_dim, emb_channels, bias=False)
            kaiming_normal_(self.map_label.weight, label_dim, gain=math.sqrt(label_dim))  # one-hot → N(0, 1) rows

        # Encoder: a 3×3 stem, then per stage a down-sampling block (except stage 0) and num_blocks blocks.
        self.enc = torch.nn.ModuleDict()
        cout = in_channels
        for stage, mult in enumerate(channel_mult):
            tag = f"{res_h >> stage}x{res_w >> stage}"
            if stage == 0:
                self.enc[f"{tag}_conv"] = conv2d(cout, model_channels * mult, kernel=3)
                cout = model_channels * mult
            else:
                self.enc[f"{tag}_down"] = UNetBlock(cout, cout, down=True, **block_kwargs)
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{tag}_block{idx}"] = UNetBlock(cin, cout, attention=stage in attn_stages, **block_kwargs)
        skips = [block.out_channels for block in self.enc.values()]

        # Decoder: bottleneck (attention + plain block) at the last stage, up-sampling blocks elsewhere;
        # num_blocks + 1 blocks per stage, each consuming one encoder skip (concatenated on channels).
        self.dec = torch.nn.ModuleDict()
        for stage in reversed(range(len(channel_mult))):
            tag = f"{res_h >> stage}x{res_w >> stage}"
            if stage == len(channel_mult) - 1:
                self.dec[f"{tag}_in0"] = UNetBlock(cout, cout, attention=True, **block_kwargs)
                self.dec[f"{tag}_in1"] = UNetBlock(cout, cout, **block_kwargs)
            else:
                self.dec[f"{tag}_up"] = UNetBlock(cout, cout, up=True, **block_kwargs)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * channel_mult[stage]
                self.dec[f"{tag}_block{idx}"] = UNetBlock(cin, cout, attention=stage in attn_stages, **block_kwargs)
        self.out_norm = group_norm(cout)
        self.out_conv = conv2d(cout, out_channels, kernel=3, gain=0.0)  # zero: F ≡ 0 at init

    def embedding(self, noise_labels: torch.Tensor, class_labels: torch.Tensor | None,
                  augment_labels: torch.Tensor | None) -> torch.Tensor:
        """emb = SiLU(W₁·SiLU(W₀·(PE(c_noise) + A·aug)) + L·label), with label dropout while training."""
        emb = self.map_noise(noise_labels)
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels.to(emb.dtype))
        emb = self.map_layer1(F.silu(self.map_layer0(emb)))
        if self.map_label is not None and class_labels is not None:
            labels = class_labels.to(emb.dtype)
            if self.training and self.label_dropout:
                # Classifier-free guidance: a dropped label is the all-zero (unconditional) label.
                keep = torch.rand([labels.shape[0], 1], device=labels.device) >= self.label_dropout
                labels = labels * keep.to(labels.dtype)
            emb = emb + self.map_label(labels)
        return F.silu(emb)

    def forward(self, x: torch.Tensor, noise_labels: torch.Tensor, class_labels: torch.Tensor | None = None,
                augment_labels: torch.Tensor | None = None) -> torch.Tensor:
        """F(x; c_noise): (B, in_channels, H, W), (B,) → (B, out_channels, H, W)."""
        emb = self.embedding(noise_labels, class_labels, augment_labels)
        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        for block in self.dec.values():
            if x.shape[1] != block.in_channels:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x, emb)
        return self.out_conv(F.silu(self.out_norm(x)))


def _check_architecture(res_h: int, res_w: int, in_channels: int, out_channels: int, model_channels: int,
                        channel_mult: list[int], num_blocks: int, attn_stages: list[int], dropout: float,
                        label_dropout: float, label_dim: int, augment_dim: int) -> None:
    """Reject inconsistent UNet hyper-parameters with a ValueError naming the argument."""
    for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                             ("model_channels", model_channels, 1), ("num_blocks", num_blocks, 1),
                             ("label_dim", label_dim, 0), ("augment_dim", augment_dim, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}: expected an int ≥ {low}, found {value!r}")
    if not channel_mult or min(channel_mult) < 1:
        raise ValueError(f"channel_mult: expected a non-empty list of positive ints, found {channel_mult}")
    factor = 2 ** (len(channel_mult) - 1)
    if res_h % factor or res_w % factor:
        raise ValueError(f"img_resolution: expected H and W divisible by 2^(len(channel_mult)-1) = {factor}, "
                         f"found {res_h}x{res_w}")
    if attn_stages and (attn_stages[0] < 0 or attn_stages[-1] >= len(channel_mult)):
        raise ValueError(f"attn_stages: expected stage indices in [0, {len(channel_mult) - 1}], found {attn_stages}")
    for name, value in (("dropout", dropout), ("label_dropout", label_dropout)):
        if not 0.0 <= float(value) < 1.0:
            raise ValueError(f"{name}: expected a probability in [0, 1), found {value!r}")
