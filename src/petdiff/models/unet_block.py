"""One ADM residual block: adaptive group norm from the noise embedding, optional resampling and self-attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from petdiff.models.layers import conv2d, downsample, dropout, group_norm, linear, upsample


class SelfAttention(torch.nn.Module):
    """Multi-head self-attention over pixels: x + proj(softmax(QᵀK/√d)·V), Q, K, V = qkv(GroupNorm(x))."""

    def __init__(self, channels: int, num_heads: int, eps: float = 1e-5):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads: expected a divisor of channels={channels}, found {num_heads}")
        self.num_heads = num_heads
        self.norm2 = group_norm(channels, eps=eps)
        self.qkv = conv2d(channels, 3 * channels, kernel=1)
        self.proj = conv2d(channels, channels, kernel=1, gain=0.0)  # zero: the block starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual attention on (B, C, H, W) features."""
        b, c, h, w = x.shape
        # Channel layout of qkv is (head, channel-in-head, q/k/v), as in NVlabs/edm.
        qkv = self.qkv(self.norm2(x)).reshape(b, self.num_heads, c // self.num_heads, 3, h * w)
        q, k, v = (qkv[:, :, :, i].transpose(-1, -2) for i in range(3))  # (B, heads, HW, d)
        a = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / √d) v, fused kernel
        return x + self.proj(a.transpose(-1, -2).reshape(b, c, h, w))


class UNetBlock(torch.nn.Module):
    """ADM residual block: h = conv1(drop(SiLU(GN(conv0(SiLU(GN(x))))·(1+scale) + shift))) + skip(x), then attention."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        up: bool = False,
        down: bool = False,
        attention: bool = False,
        channels_per_head: int = 64,
        dropout: float = 0.0,
        eps: float = 1e-5,
    ):
        super().__init__()
        if up and down:
            raise ValueError("up, down: expected at most one of them to be True, found both")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.up = up
        self.down = down
        self.dropout = float(dropout)

        self.norm0 = group_norm(in_channels, eps=eps)
        self.conv0 = conv2d(in_channels, out_channels, kernel=3)
        self.affine = linear(emb_channels, 2 * out_channels)
        self.norm1 = group_norm(out_channels, eps=eps)
        self.conv1 = conv2d(out_channels, out_channels, kernel=3, gain=0.0)  # zero: residual branch starts at 0
        # 1×1 projection only when the width changes; a pure resample is parameter-free (ADM's resample_proj=False).
        self.skip = conv2d(in_channels, out_channels, kernel=1) if in_channels != out_channels else None
        # ≥ 1 head so that attention asked for on a narrow (< 64-channel) stage is never silently dropped.
        self.attn = SelfAttention(out_channels, max(1, out_channels // channels_per_head), eps) if attention else None

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        """Apply this block's up/down-sampling (identity when neither)."""
        if self.up:
            return upsample(x)
        if self.down:
            return downsample(x)
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Map (B, C_in, H, W) features and a (B, E) embedding to (B, C_out, H', W')."""
        h = self.conv0(self._resample(F.silu(self.norm0(x))))
        scale, shift = self.affine(emb)[:, :, None, None].to(h.dtype).chunk(2, dim=1)
        h = F.silu(torch.addcmul(shift, self.norm1(h), scale + 1))
        h = self.conv1(dropout(h, self.dropout, self.training))
        skip = self._resample(x)
        h = h + (self.skip(skip) if self.skip is not None else skip)
        return self.attn(h) if self.attn is not None else h
