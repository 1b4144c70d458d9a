"""Phantom sources for simulation: procedural phantoms (endless, seeded) or slices from a file."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch

from petdiff.phantoms import brainweb_labels, load_brainweb, load_images, procedural_phantoms, resample_images


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


def phantom_source(spec: str, resolution: int = 64) -> ProceduralSource | FileSource:
    """'procedural' → ProceduralSource; anything else is a path → FileSource."""
    if spec == "procedural":
        return ProceduralSource(resolution)
    return FileSource(spec, resolution)
