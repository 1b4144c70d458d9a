"""Slabs of 2k+1 adjacent axial slices (the 2.5D phantom unit): the `Slabs` result, the per-slab grid in mm and
the soft painter's canvas the slab generators draw on."""

from __future__ import annotations

from dataclasses import dataclass

import torch

EDGE = 0.18  # sigmoid edge width in pixels: the std of a one-pixel box (partial volume of a straight edge)


@dataclass(frozen=True)
class Slabs:
    """n phantom slabs of S = 2k+1 adjacent slices, activity in SUV units, slice k the centre slice.

    lesion_diameter_mm / lesion_contrast hold, per lesion slot j (label j + 1 in `lesions`), its volume-equivalent
    diameter and its activity ratio to the local background (NaN for an unused slot).
    """

    activity: torch.Tensor  # (n, S, G, G) float32 >= 0, SUV
    labels: torch.Tensor  # (n, S, G, G) int64, indices into class_names
    lesions: torch.Tensor  # (n, S, G, G) int64, 0 = no lesion, j = lesion j
    class_names: tuple[str, ...]
    pixel_size_mm: torch.Tensor  # (n,)
    slice_mm: torch.Tensor  # (n,)
    kinds: tuple[str, ...]  # (n,) "body" | "brain" | "field"
    lesion_diameter_mm: torch.Tensor  # (n, L)
    lesion_contrast: torch.Tensor  # (n, L)

    def __len__(self) -> int:
        return self.activity.shape[0]

    @property
    def context(self) -> int:
        """k: the number of slices on each side of the centre slice."""
        return (self.activity.shape[1] - 1) // 2

    def class_index(self, name: str) -> int:
        """Index of a tissue class by name (ValueError listing the names when unknown)."""
        if name not in self.class_names:
            raise ValueError(f"name: expected one of {list(self.class_names)}, found {name!r}")
        return self.class_names.index(name)

    @classmethod
    def lesion_free(cls, activity: torch.Tensor, labels: torch.Tensor, class_names: tuple[str, ...],
                    pixel_size_mm: torch.Tensor, slice_mm: torch.Tensor, kind: str) -> Slabs:
        """Slabs of one kind with no lesion yet (`lesions.insert_lesions` adds them)."""
        n = activity.shape[0]
        empty = torch.zeros((n, 0), device=activity.device)
        return cls(activity=activity.float().contiguous(), labels=labels, lesions=torch.zeros_like(labels),
                   class_names=class_names, pixel_size_mm=pixel_size_mm, slice_mm=slice_mm, kinds=(kind,) * n,
                   lesion_diameter_mm=empty, lesion_contrast=empty.clone())

    def select(self, index: torch.Tensor) -> Slabs:
        """The slabs at `index` (a 1D index tensor), in that order."""
        idx = index.to(self.activity.device).long()
        lesion_idx = idx.to(self.lesion_diameter_mm.device)
        return Slabs(
            activity=self.activity[idx],
            labels=self.labels[idx],
            lesions=self.lesions[idx],
            class_names=self.class_names,
            pixel_size_mm=self.pixel_size_mm[idx],
            slice_mm=self.slice_mm[idx],
            kinds=tuple(self.kinds[i] for i in idx.tolist()),
            lesion_diameter_mm=self.lesion_diameter_mm[lesion_idx],
            lesion_contrast=self.lesion_contrast[lesion_idx],
        )


def check_slab_arguments(n: int, grid: int, context: int) -> None:
    """n ≥ 1, grid in [8, 1024] and context k ≥ 0 as ints, else a ValueError naming the argument."""
    for name, value, lo, hi in (("n", n, 1, None), ("grid", grid, 16, 1024), ("context", context, 0, 32)):
        ok = not isinstance(value, bool) and isinstance(value, int) and value >= lo and (hi is None or value <= hi)
        if not ok:
            bound = f"an int >= {lo}" if hi is None else f"an int in [{lo}, {hi}]"
            raise ValueError(f"{name}: expected {bound}, found {value!r}")


def per_slab(
    name: str,
    value: float | tuple[float, float] | torch.Tensor,
    n: int,
    g: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """(n,) float32 values > 0: a number for all, a (lo, hi) range drawn log-uniformly per slab, or an (n,) tensor."""
    if isinstance(value, torch.Tensor):
        out = value.to(device=device, dtype=torch.float32).flatten()
        if out.numel() == 1:
            out = out.expand(n).clone()
        if out.numel() != n:
            raise ValueError(f"{name}: expected a number, a (lo, hi) range or {n} values, found {value.numel()} values")
    elif isinstance(value, tuple | list):
        if len(value) != 2 or not 0 < float(value[0]) <= float(value[1]):
            raise ValueError(f"{name}: expected a range (lo, hi) with 0 < lo <= hi, found {value!r}")
        lo, hi = torch.tensor([float(value[0]), float(value[1])]).log()
        out = torch.exp(lo + (hi - lo) * torch.rand((n,), generator=g, device=device))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out = torch.full((n,), float(value), device=device)
    else:
        raise ValueError(f"{name}: expected a number, a (lo, hi) range or an (n,) tensor, found {type(value).__name__}")
    if not bool(torch.isfinite(out).all()) or bool((out <= 0).any()):
        raise ValueError(f"{name}: expected finite values > 0 (mm), found {out.tolist()[:4]}")
    return out


def pixel_coordinates(grid: int, pixel_size_mm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) in mm of the pixel centres, each (n, 1, G, G): column 0 at the left (x < 0), row 0 at the top (y > 0)."""
    c = torch.arange(grid, device=pixel_size_mm.device, dtype=torch.float32) + 0.5 - grid / 2
    ps = pixel_size_mm.view(-1, 1, 1, 1)
    x = (c.view(1, 1, 1, grid) * ps).expand(-1, 1, grid, grid)
    y = (-c.view(1, 1, grid, 1) * ps).expand(-1, 1, grid, grid)
    return x, y


def slice_offsets(context: int, slice_mm: torch.Tensor) -> torch.Tensor:
    """(n, S, 1, 1) axial offsets (i − k)·slice_mm of the slab's slices from its centre slice."""
    i = torch.arange(-context, context + 1, device=slice_mm.device, dtype=torch.float32)
    return (i.view(1, -1) * slice_mm.view(-1, 1)).view(-1, 2 * context + 1, 1, 1)


class Window:
    """One W×W pixel window per selected slab, inside the G×G grid: where a small solid is drawn, so that its cost
    scales with its size, not with the grid's."""

    def __init__(self, idx: torch.Tensor, row: torch.Tensor, col: torch.Tensor, size: int, grid: int) -> None:
        """Windows of `size` pixels centred (as near as the grid allows) on (row, col) (m,) of the slabs idx (m,)."""
        self.size = size
        r0 = (row.round().long() - size // 2).clamp(0, grid - size)
        c0 = (col.round().long() - size // 2).clamp(0, grid - size)
        k = torch.arange(size, device=idx.device)
        flat = (r0[:, None, None] + k[None, :, None]) * grid + (c0[:, None, None] + k[None, None, :])
        self.idx, self.flat, self.pixels = idx, flat.view(-1, 1, size * size), grid * grid
        self._linear: dict[int, torch.Tensor] = {}

    def _index(self, channels: int) -> torch.Tensor:
        """Linear indices (m, C, W²) of the windows in a contiguous (n, C, G, G) tensor."""
        if channels not in self._linear:
            c = torch.arange(channels, device=self.idx.device).view(1, -1, 1)
            self._linear[channels] = (self.idx.view(-1, 1, 1) * channels + c) * self.pixels + self.flat
        return self._linear[channels]

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """The windows of a full (n, C, G, G) tensor, (m, C, W, W)."""
        lin = self._index(t.shape[1])
        return torch.take(t.contiguous(), lin).view(-1, t.shape[1], self.size, self.size)

    def put(self, t: torch.Tensor, values: torch.Tensor) -> None:
        """Write (m, C, W, W) values into the windows of the full tensor t (in place; t must be contiguous)."""
        t.put_(self._index(t.shape[1]), values.reshape(values.shape[0], t.shape[1], -1))


class Canvas:
    """Activity and labels of n slabs painted back to front: each solid replaces what lies under it by its
    occupancy m, activity ← (1 − m)·activity + m·value, and takes the label where m > 1/2."""

    def __init__(self, n: int, slices: int, grid: int, device: torch.device) -> None:
        self.activity = torch.zeros((n, slices, grid, grid), device=device)
        self.labels = torch.zeros((n, slices, grid, grid), dtype=torch.int64, device=device)

    def paint(self, where: Window | None, m: torch.Tensor, value: torch.Tensor, label: int) -> None:
        """Paint occupancy m with `value` (broadcastable) on every slab (None, m full size) or in `where`'s windows."""
        if where is None:
            self.activity.lerp_(torch.as_tensor(value, dtype=m.dtype).expand_as(m), m)
            self.labels.masked_fill_(m > 0.5, label)
            return
        act = where.take(self.activity)
        where.put(self.activity, torch.lerp(act, torch.as_tensor(value, dtype=m.dtype).expand_as(m), m))
        where.put(self.labels, where.take(self.labels).masked_fill(m > 0.5, label))


def concat_slabs(parts: list[Slabs]) -> Slabs:
    """One Slabs of all parts in order: class names merged by name (labels remapped), lesion slots padded (NaN)."""
    if not parts:
        raise ValueError("parts: expected at least one Slabs, found none")
    names: list[str] = []
    for part in parts:
        names.extend(name for name in part.class_names if name not in names)
    n_slots = max(part.lesion_diameter_mm.shape[1] for part in parts)
    labels, diameters, contrasts = [], [], []
    for part in parts:
        lookup = torch.tensor([names.index(name) for name in part.class_names], device=part.labels.device)
        labels.append(lookup[part.labels])
        pad = (0, n_slots - part.lesion_diameter_mm.shape[1])
        diameters.append(torch.nn.functional.pad(part.lesion_diameter_mm, pad, value=float("nan")))
        contrasts.append(torch.nn.functional.pad(part.lesion_contrast, pad, value=float("nan")))
    return Slabs(
        activity=torch.cat([part.activity for part in parts]),
        labels=torch.cat(labels),
        lesions=torch.cat([part.lesions for part in parts]),
        class_names=tuple(names),
        pixel_size_mm=torch.cat([part.pixel_size_mm for part in parts]),
        slice_mm=torch.cat([part.slice_mm for part in parts]),
        kinds=tuple(kind for part in parts for kind in part.kinds),
        lesion_diameter_mm=torch.cat(diameters),
        lesion_contrast=torch.cat(contrasts),
    )
