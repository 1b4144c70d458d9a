"""Non-leaky geometric augmentation (Karras et al. 2022, App. B.5; NVlabs/edm training/augment.py, geometric part).

Each transform is switched on per image with probability min(multiplier·p, 1) and its parameters are returned as a
9-dimensional label (zero ⇔ not augmented) that the network receives, so that sampling with a zero label produces
un-augmented images. Layout of the label (as in EDM with xflip, yflip, scale, rotate_frac, aniso, translate_frac):

    [xflip, yflip, scale, cos θ − 1, sin θ, a·cos r, a·sin r, tx, ty]

x-flip mirrors columns, y-flip rows (an enabled flip is a fair coin, as in EDM, so ``xflip=1e8`` flips half the
images); scale s = 2^(scale_std·z); rotation θ ~ U(−π, π)·rotate_max, counter-clockwise as displayed
(θ = π/2 ⇔ ``torch.rot90(x, 1, dims=(-2, -1))``); anisotropic scale 2^(±aniso_std·a) along an axis rotated by r;
translation (tx·W, ty·H)·translate_std pixels. The same transform is applied to every channel of an image, so a
(full-dose, low-dose) pair stacked on the channel axis stays aligned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch

from petdiff.models.rng import GeneratorLike, as_generator, rand, randn
from petdiff.models.warp import rotation, scaling, translation, warp_affine
from petdiff.utils.validation import check_image_batch

AUGMENT_DIM = 9


@dataclass
class AugmentParams:
    """Per-image transform parameters (all (N,) float32 tensors; zero = transform off)."""

    xflip: torch.Tensor  # 0 or 1
    yflip: torch.Tensor  # 0 or 1
    scale: torch.Tensor  # z: isotropic scale 2^(scale_std·z)
    rotate: torch.Tensor  # θ in radians, counter-clockwise as displayed
    aniso: torch.Tensor  # a: anisotropic scale 2^(aniso_std·a) …
    aniso_angle: torch.Tensor  # … along the axis at angle r
    translate_x: torch.Tensor  # tx: shift of tx·W·translate_std pixels to the right
    translate_y: torch.Tensor  # ty: shift of ty·H·translate_std pixels down

    @classmethod
    def identity(cls, n: int, device: torch.device | str = "cpu") -> AugmentParams:
        """Parameters of n un-augmented images."""
        return cls(**{f.name: torch.zeros(n, device=device) for f in fields(cls)})

    def labels(self) -> torch.Tensor:
        """(N, 9) augmentation label [xflip, yflip, scale, cos θ − 1, sin θ, a cos r, a sin r, tx, ty]."""
        return torch.stack([
            self.xflip, self.yflip, self.scale,
            self.rotate.cos() - 1, self.rotate.sin(),
            self.aniso * self.aniso_angle.cos(), self.aniso * self.aniso_angle.sin(),
            self.translate_x, self.translate_y,
        ], dim=1).to(torch.float32)


class AugmentPipe:
    """Geometric augmentation returning (images, augment_labels (N, 9)); p = 0 is the identity with zero labels."""

    def __init__(
        self,
        p: float = 0.12,
        xflip: float = 1.0,
        yflip: float = 1.0,
        scale: float = 1.0,
        rotate: float = 1.0,
        aniso: float = 1.0,
        translate: float = 1.0,
        scale_std: float = 0.2,
        rotate_max: float = 1.0,
        aniso_std: float = 0.2,
        aniso_rotate_prob: float = 0.5,
        translate_std: float = 0.125,
    ):
        self.p = float(p)
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], found {p!r}")
        self.xflip, self.yflip, self.scale = float(xflip), float(yflip), float(scale)
        self.rotate, self.aniso, self.translate = float(rotate), float(aniso), float(translate)
        self.scale_std, self.rotate_max = float(scale_std), float(rotate_max)
        self.aniso_std, self.aniso_rotate_prob = float(aniso_std), float(aniso_rotate_prob)
        self.translate_std = float(translate_std)
        for name, value in self.config.items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite number ≥ 0, found {value!r}")
        if self.aniso_rotate_prob > 1:
            raise ValueError(f"aniso_rotate_prob: expected a probability in [0, 1], found {aniso_rotate_prob!r}")

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable): ``AugmentPipe(**pipe.config)`` rebuilds the pipe."""
        return {k: getattr(self, k) for k in ("p", "xflip", "yflip", "scale", "rotate", "aniso", "translate",
                                              "scale_std", "rotate_max", "aniso_std", "aniso_rotate_prob",
                                              "translate_std")}

    def sample_params(self, n: int, device: torch.device | str = "cpu",
                      generator: GeneratorLike = None) -> AugmentParams:
        """Draw n images' parameters; the number of draws does not depend on p, so streams stay in step."""
        generator = as_generator(generator)
        device = torch.device(device)
        u = rand((11, n), generator, device)
        z = randn((4, n), generator, device)

        def on(column: int, multiplier: float) -> torch.Tensor:
            """Per-image switch: the transform is used with probability min(multiplier·p, 1)."""
            return (u[column] < multiplier * self.p).to(torch.float32)

        return AugmentParams(
            xflip=on(0, self.xflip) * (u[1] < 0.5),
            yflip=on(2, self.yflip) * (u[3] < 0.5),
            scale=on(4, self.scale) * z[0],
            rotate=on(5, self.rotate) * (u[6] * 2 - 1) * (math.pi * self.rotate_max),
            aniso=on(7, self.aniso) * z[1],
            aniso_angle=(u[8] < self.aniso_rotate_prob) * (u[9] * 2 - 1) * math.pi,
            translate_x=on(10, self.translate) * z[2],
            translate_y=on(10, self.translate) * z[3],
        )

    def inverse_matrix(self, params: AugmentParams, height: int, width: int) -> torch.Tensor:
        """(N, 3, 3) G⁻¹ = S⁻¹ R⁻¹ A⁻¹ T⁻¹ in centred pixels (output pixel → input pixel), flips excluded."""
        s = torch.exp2(params.scale * self.scale_std)
        a = torch.exp2(params.aniso * self.aniso_std)
        r = params.aniso_angle
        return (
            scaling(1 / s, 1 / s)
            @ rotation(params.rotate)
            @ rotation(-r) @ scaling(1 / a, a) @ rotation(r)
            @ translation(-params.translate_x * (width * self.translate_std),
                          -params.translate_y * (height * self.translate_std))
        )

    def apply(self, images: torch.Tensor, params: AugmentParams) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply given parameters to (N, C, H, W) images; return (images, labels (N, 9))."""
        check_image_batch("images", images, channels=None)
        n, _, h, w = images.shape
        params = AugmentParams(**{f.name: getattr(params, f.name).to(images.device, torch.float32).reshape(-1)
                                  for f in fields(AugmentParams)})
        if params.xflip.shape[0] != n:
            raise ValueError(f"params: expected parameters for {n} images, found {params.xflip.shape[0]}")
        images = torch.where(params.xflip[:, None, None, None] > 0, images.flip(3), images)
        images = torch.where(params.yflip[:, None, None, None] > 0, images.flip(2), images)
        warped = (params.scale != 0) | (params.rotate != 0) | (params.aniso != 0) \
            | (params.translate_x != 0) | (params.translate_y != 0)
        index = warped.nonzero().flatten()
        if index.numel():  # resample only the images that need it: the others stay bit-exact
            inverse = self.inverse_matrix(params, h, w)[index]
            images = images.index_copy(0, index, warp_affine(images[index], inverse))
        return images, params.labels()

    def __call__(self, images: torch.Tensor, generator: GeneratorLike = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment (N, C, H, W) images with freshly drawn parameters; return (images, augment_labels (N, 9))."""
        check_image_batch("images", images, channels=None)
        return self.apply(images, self.sample_params(images.shape[0], images.device, generator))
