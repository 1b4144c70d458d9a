"""Tissue classes and the parameter ranges of the procedural brain phantoms."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

CLASS_NAMES: tuple[str, ...] = (
    "background",
    "scalp",
    "skull",
    "csf",
    "grey_matter",
    "white_matter",
    "deep_grey",
    "cerebellum",
    "hot_lesion",
    "cold_lesion",
)
BACKGROUND, SCALP, SKULL, CSF, GREY, WHITE, DEEP_GREY, CEREBELLUM, HOT_LESION, COLD_LESION = range(len(CLASS_NAMES))
BRAIN_TISSUE = (GREY, WHITE, DEEP_GREY, CEREBELLUM)


@dataclass(frozen=True)
class PhantomConfig:
    """Ranges (lo, hi) drawn uniformly per phantom; activity levels calibrated on the BrainWeb reference (0…12).

    Grey matter sets the scale; the other tissues are ratios to it (FDG-like: grey ≈ 4× white, CSF ≈ 0,
    scalp/skull low), so a phantom's contrast varies while the overall range stays BrainWeb-like.
    """

    grey_level: tuple[float, float] = (5.0, 8.0)
    grey_white_ratio: tuple[float, float] = (3.0, 5.0)
    deep_grey_ratio: tuple[float, float] = (0.8, 1.05)
    cerebellum_ratio: tuple[float, float] = (0.75, 1.0)
    scalp_ratio: tuple[float, float] = (0.2, 0.5)
    skull_ratio: tuple[float, float] = (0.0, 0.03)
    csf_level: tuple[float, float] = (0.0, 0.0)
    hot_lesion_ratio: tuple[float, float] = (1.3, 1.8)
    cold_lesion_ratio: tuple[float, float] = (0.0, 0.5)
    max_hot_lesions: int = 3
    max_cold_lesions: int = 2
    lesion_radius: tuple[float, float] = (0.025, 0.07)
    level: tuple[float, float] = (0.0, 1.0)
    rotation_deg: float = 12.0
    shift: float = 0.05
    scale: tuple[float, float] = (0.9, 1.08)
    asymmetry: float = 0.05

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                ok = len(value) == 2 and all(math.isfinite(v) and v >= 0 for v in value) and value[0] <= value[1]
                if not ok:
                    raise ValueError(
                        f"PhantomConfig.{f.name}: expected a range (lo, hi) with 0 <= lo <= hi, found {value!r}"
                    )
            elif not (math.isfinite(value) and value >= 0):
                raise ValueError(f"PhantomConfig.{f.name}: expected a finite number >= 0, found {value!r}")
        if self.level[1] > 1:
            raise ValueError(f"PhantomConfig.level: expected a sub-range of [0, 1], found {self.level!r}")
        if self.grey_white_ratio[0] <= 0 or self.scale[0] <= 0:
            raise ValueError("PhantomConfig: grey_white_ratio and scale must be > 0")
