"""Phantom sources for simulation: procedural anatomy, random label fields, a mix (endless, seeded), or a file."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch

from petdiff.phantoms import brainweb_labels, load_brainweb, load_images, procedural_phantoms, resample_images
from petdiff.phantoms.label_fields import label_field_phantoms


def _is_brainweb(path: Path) -> bool:
    """An .npz holding the reference's `phantoms` key (read lazily: only the member names)."""
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return "phantoms.npy" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False  # load_images reports the corrupt file with its own message


class ProceduralSource:
    """Endless procedural brain phantoms at one resolution."""

    def __init__(self, resolution: int = 64, lesions: bool = True, supersample: int = 1) -> None:
        self.resolution = resolution
        self.lesions = lesions
        self.supersample = supersample

    def __len__(self) -> int:
        return 0  # endless: every draw is a new phantom

    def draw(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n new phantoms: (activity (n,1,H,W), labels (n,1,H,W))."""
        phantoms = procedural_phantoms(
            n, self.resolution, generator=generator, lesions=self.lesions, supersample=self.supersample, device=device
        )
        return phantoms.activity, phantoms.labels


class LabelFieldSource:
    """Endless random piecewise-constant head phantoms (`label_field_phantoms`)."""

    def __init__(self, resolution: int = 64) -> None:
        self.resolution = resolution

    def __len__(self) -> int:
        return 0

    def draw(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n new phantoms: (activity (n,1,H,W), labels (n,1,H,W))."""
        phantoms = label_field_phantoms(n, self.resolution, generator=generator, device=device)
        return phantoms.activity, phantoms.labels


class MixedSource:
    """Endless phantoms, each drawn from procedural anatomy or random label fields (share `field_share`)."""

    def __init__(self, resolution: int = 64, field_share: float = 0.5) -> None:
        if not 0.0 <= field_share <= 1.0:
            raise ValueError(f"field_share: expected a probability in [0, 1], found {field_share!r}")
        self.resolution = resolution
        self.field_share = field_share
        self.anatomy, self.fields = ProceduralSource(resolution), LabelFieldSource(resolution)

    def __len__(self) -> int:
        return 0

    def draw(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n phantoms: the first Binomial(n, field_share) from label fields, the rest anatomical, shuffled."""
        u = torch.rand(n, generator=generator, device=generator.device if generator else "cpu")
        n_fields = int((u < self.field_share).sum())
        parts = []
        if n_fields:
            parts.append(self.fields.draw(n_fields, generator, device))
        if n - n_fields:
            parts.append(self.anatomy.draw(n - n_fields, generator, device))
        activity = torch.cat([p[0] for p in parts])
        labels = torch.cat([p[1] for p in parts])
        order = torch.randperm(n, generator=generator, device=generator.device if generator else "cpu").to(device)
        return activity[order], labels[order]


class FileSource:
    """Slices of a phantom/image file (BrainWeb .npz, .npy, NIfTI), drawn uniformly at random."""

    def __init__(self, path: str | os.PathLike, resolution: int | None = None) -> None:
        self.path = Path(path)
        if _is_brainweb(self.path):
            activity = load_brainweb(self.path)
            if resolution is not None and activity.shape[-1] != resolution:
                activity = resample_images(activity, resolution)
        else:
            activity = load_images(self.path, resolution)
        # Keep only slices with activity: an empty slice cannot be scaled to a count level.
        keep = activity.flatten(1).sum(dim=1) > 0
        if not bool(keep.any()):
            raise ValueError(f"{self.path}: every slice is empty (zero activity)")
        self.activity = activity[keep]
        try:
            self.labels, _ = brainweb_labels(self.activity)
        except ValueError:
            self.labels = None  # continuous images: no tissue classes, no perturbation
        self.resolution = int(self.activity.shape[-1])

    def __len__(self) -> int:
        return int(self.activity.shape[0])

    def slices(
        self, indices: torch.Tensor, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The slices at `indices`: (activity, labels or None)."""
        labels = None if self.labels is None else self.labels[indices].to(device)
        return self.activity[indices].to(device), labels

    def draw(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n slices drawn uniformly with replacement."""
        index = torch.randint(len(self), (n,), generator=generator, device=generator.device if generator else "cpu")
        return self.slices(index.cpu(), device)


GENERATED_SOURCES = ("procedural", "fields", "mixed")


def phantom_source(spec: str, resolution: int = 64) -> ProceduralSource | LabelFieldSource | MixedSource | FileSource:
    """'procedural' (anatomy), 'fields' (random label fields), 'mixed' (half each); anything else is a path."""
    if spec == "procedural":
        return ProceduralSource(resolution)
    if spec == "fields":
        return LabelFieldSource(resolution)
    if spec == "mixed":
        return MixedSource(resolution)
    return FileSource(spec, resolution)
