"""Forward/adjoint PET projector y = A x (deepinv-style operator), with optional attenuation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from petdiff.physics import sparse
from petdiff.physics.geometry import Geometry
from petdiff.physics.matrix import load_arrays, load_transposed, scale_in_place
from petdiff.utils.validation import check_image_batch, check_non_negative


@dataclass
class SparseOperator:
    """Rows `lors` of A with Aᵀ stored explicitly; operands are (features, batch) with the batch contiguous."""

    matrix: torch.Tensor  # CSR (d_sub, p)
    matrix_t: torch.Tensor  # CSR (p, d_sub)
    sensitivity: torch.Tensor  # Aᵀ1 as (p, 1)
    lors: torch.Tensor | None = None  # LOR indices into the flattened sinogram, None = all

    @classmethod
    def from_pair(
        cls, matrix: torch.Tensor, matrix_t: torch.Tensor, lors: torch.Tensor | None = None
    ) -> SparseOperator:
        """Wrap A and Aᵀ; the sensitivity Aᵀ1 = Aᵀ's row sums in float64 (MLEM divides by it at every step)."""
        sens = sparse.row_sums(matrix_t).to(matrix_t.values().dtype)[:, None]
        return cls(matrix, matrix_t, sens, lors)

    def __getstate__(self) -> dict:
        # sparse CSR tensors cannot be pickled (spawned DataLoader workers, deepcopy): store their parts
        def parts(m: torch.Tensor) -> tuple:
            return (m.crow_indices(), m.col_indices(), m.values(), tuple(m.shape))

        return {
            "matrix": parts(self.matrix),
            "matrix_t": parts(self.matrix_t),
            "sensitivity": self.sensitivity,
            "lors": self.lors,
        }

    def __setstate__(self, state: dict) -> None:
        self.matrix = sparse.csr(*state["matrix"])
        self.matrix_t = sparse.csr(*state["matrix_t"])
        self.sensitivity = state["sensitivity"]
        self.lors = state["lors"]

    def restrict(self, rows: torch.Tensor) -> SparseOperator:
        """The operator on some of its LORs (increasing local row indices); `sensitivity` stays the parent's Aᵀ1.

        MLEM uses this to drop LORs without counts: Y/(Aλ + s) is 0 there, so the products skip only zeros.
        """
        rows = rows.to(device=self.matrix.values().device, dtype=torch.int64)
        lors = rows if self.lors is None else self.lors[rows]
        sub, sub_t = sparse.select_rows(self.matrix, rows), sparse.select_columns(self.matrix_t, rows)
        return SparseOperator(sub, sub_t, self.sensitivity, lors)

    def forward_flat(self, x: torch.Tensor) -> torch.Tensor:
        """A·X for X of shape (p, B) → (d_sub, B)."""
        return self.matrix @ x

    def adjoint_flat(self, y: torch.Tensor) -> torch.Tensor:
        """Aᵀ·Y for Y of shape (d_sub, B) → (p, B)."""
        return self.matrix_t @ y

    def to(self, device: torch.device | None = None, dtype: torch.dtype | None = None) -> SparseOperator:
        """A copy on `device` / with value dtype `dtype`."""

        def move(m: torch.Tensor) -> torch.Tensor:
            values = m.values().to(device=device, dtype=dtype)
            return sparse.csr(m.crow_indices().to(device), m.col_indices().to(device), values, tuple(m.shape))

        lors = None if self.lors is None else self.lors.to(device)
        return SparseOperator(move(self.matrix), move(self.matrix_t), self.sensitivity.to(device, dtype), lors)


class Projector:
    """PET operator A: image (B,1,H,W) → sinogram (B, n_angles, n_bins), y_i = a_i·Σ_j A[i, j] x_j.

    A holds exact Siddon lengths (columns normalised to sum 1 when `normalize`); with an attenuation map μ
    (H, W) in 1/(domain length) every LOR is scaled by a_i = exp(-Σ_j A_raw[i, j] μ_j), else a_i = 1.
    A and Aᵀ are both kept as CSR (and Aᵀ's raw arrays cached on disk), so both products stream rows.
    Example: ``P = Projector(64); y = P.forward(x); x_bp = P.adjoint(y)``.
    """

    def __init__(
        self,
        geometry_or_resolution: Geometry | int,
        normalize: bool = True,
        attenuation: torch.Tensor | np.ndarray | None = None,
        device: torch.device | str | None = None,
        cache: bool = True,
    ) -> None:
        self.geometry = Geometry.coerce(geometry_or_resolution)
        self.normalize = bool(normalize)
        g = self.geometry
        mu = None if attenuation is None else self._check_attenuation(attenuation)
        a = load_arrays(g, cache=cache)
        a_t = load_transposed(g, a, cache=cache)
        self.attenuation: torch.Tensor | None = None
        self.attenuation_factors: torch.Tensor | None = None
        factors = None
        if mu is not None:  # a_i = exp(-Σ_j A_raw[i, j] μ_j), from the raw lengths before any scaling
            raw = sparse.csr(
                torch.from_numpy(a["crow"]),
                torch.from_numpy(a["cols"]),
                torch.from_numpy(a["values"]),
                (g.n_lors, g.n_pixels),
            )
            factors = torch.exp(-(raw @ mu.reshape(-1, 1))[:, 0]).numpy()
            self.attenuation = mu
            self.attenuation_factors = torch.from_numpy(factors).reshape(g.sinogram_shape)
        # effective entries a_i·A[i, j]·n_j with n_j = 1/Σ_i A[i, j] (or 1): scaled in place, in A and in Aᵀ
        sums = a["column_sums"]
        per_pixel = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0) if self.normalize else None
        values = scale_in_place(a, row_factors=factors, col_factors=per_pixel)
        values_t = scale_in_place(a_t, row_factors=per_pixel, col_factors=factors)

        def tensor(arrays: dict[str, np.ndarray], vals: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
            return sparse.csr(
                torch.from_numpy(arrays["crow"]), torch.from_numpy(arrays["cols"]), torch.from_numpy(vals), shape
            )

        self._full = SparseOperator.from_pair(
            tensor(a, values, (g.n_lors, g.n_pixels)), tensor(a_t, values_t, (g.n_pixels, g.n_lors))
        )
        self._subsets: dict[int, list[SparseOperator]] = {}
        if device is not None:
            self.to(device)

    def _check_attenuation(self, attenuation: torch.Tensor | np.ndarray) -> torch.Tensor:
        """μ as a float32 (H, W) tensor; (1, 1, H, W) is accepted too."""
        mu = torch.as_tensor(attenuation)
        if mu.ndim == 4 and mu.shape[:2] == (1, 1):
            mu = mu[0, 0]
        if mu.shape != self.geometry.image_shape or not mu.is_floating_point():
            raise ValueError(
                f"attenuation: expected a floating (H, W) = {self.geometry.image_shape} map of μ, "
                f"found {type(attenuation).__name__} of shape {tuple(mu.shape)} and dtype {mu.dtype}"
            )
        return check_non_negative("attenuation", mu.detach().cpu().float())

    # -- device handling ---------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Device of the stored matrices."""
        return self._full.matrix.values().device

    @property
    def dtype(self) -> torch.dtype:
        """Value dtype of the stored matrices (float32 unless changed with .to)."""
        return self._full.matrix.values().dtype

    def to(self, device: torch.device | str | torch.dtype | None = None, dtype: torch.dtype | None = None) -> Projector:
        """Move the matrices (in place, like nn.Module.to) and return self; `.to(torch.float64)` changes the dtype."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"dtype: expected a floating-point dtype, found {dtype}")
        device = None if device is None else torch.device(device)
        if (device is None or device == self.device) and (dtype is None or dtype == self.dtype):
            return self
        self._full = self._full.to(device, dtype)
        self._subsets = {n: [op.to(device, dtype) for op in ops] for n, ops in self._subsets.items()}
        if self.attenuation is not None:
            self.attenuation = self.attenuation.to(device, dtype or self.dtype)
            self.attenuation_factors = self.attenuation_factors.to(device, dtype or self.dtype)
        return self

    def follow(self, t: torch.Tensor) -> torch.Tensor:
        """Move the projector to the input's device (the device follows the data) and cast the input."""
        if t.device != self.device:
            self.to(t.device)
        return t.to(self.dtype)

    # -- operator ------------------------------------------------------------------------------------------

    @property
    def operator(self) -> SparseOperator:
        """The full operator in flat (features, batch) layout, for iterative algorithms."""
        return self._full

    @property
    def matrix(self) -> torch.Tensor:
        """The effective system matrix diag(a)·A as sparse CSR (d, p)."""
        return self._full.matrix

    @property
    def sensitivity(self) -> torch.Tensor:
        """Sensitivity image Aᵀ1 (attenuation included) as (1, 1, H, W)."""
        return self._full.sensitivity.reshape(1, 1, *self.geometry.image_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = A x: images (B, 1, H, W) → sinograms (B, n_angles, n_bins)."""
        check_image_batch("x", x)
        if tuple(x.shape[2:]) != self.geometry.image_shape:
            raise ValueError(
                f"x: expected images of size (H, W) = {self.geometry.image_shape}, found shape {tuple(x.shape)}"
            )
        x = self.follow(x)
        b = x.shape[0]
        y = self._full.forward_flat(x.reshape(b, self.geometry.n_pixels).t().contiguous())
        return y.t().contiguous().reshape(b, *self.geometry.sinogram_shape)

    __call__ = forward

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """x = Aᵀ y: sinograms (B, n_angles, n_bins) → images (B, 1, H, W)."""
        self.check_sinograms("y", y, values=False)
        y = self.follow(y)
        b = y.shape[0]
        x = self._full.adjoint_flat(y.reshape(b, self.geometry.n_lors).t().contiguous())
        return x.t().contiguous().reshape(b, 1, *self.geometry.image_shape)

    def check_sinograms(self, name: str, y: torch.Tensor, values: bool = True) -> torch.Tensor:
        """Require a floating (B, n_angles, n_bins) tensor of this geometry (and non-negative finite values)."""
        expected = self.geometry.sinogram_shape
        if not isinstance(y, torch.Tensor):
            raise ValueError(
                f"{name}: expected a torch.Tensor of shape (B, {expected[0]}, {expected[1]}), found {type(y).__name__}"
            )
        if y.ndim != 3 or tuple(y.shape[1:]) != expected or not y.is_floating_point():
            raise ValueError(
                f"{name}: expected a floating tensor of shape (B, n_angles, n_bins) = "
                f"(B, {expected[0]}, {expected[1]}), found shape {tuple(y.shape)} and dtype {y.dtype}"
            )
        return check_non_negative(name, y) if values else y

    def subsets(self, n_subsets: int) -> list[SparseOperator]:
        """Ordered subsets of LORs by angle (subset q holds angles q, q + n, q + 2n, …), built once and cached."""
        g = self.geometry
        if isinstance(n_subsets, bool) or not isinstance(n_subsets, int) or not 1 <= n_subsets <= g.n_angles:
            raise ValueError(f"subsets: expected an integer in [1, n_angles = {g.n_angles}], found {n_subsets!r}")
        if n_subsets == 1:
            return [self._full]
        if n_subsets not in self._subsets:
            dev = self.device
            bins = torch.arange(g.n_bins, device=dev)
            ops = []
            for q in range(n_subsets):
                angles = torch.arange(q, g.n_angles, n_subsets, device=dev)
                lors = (angles[:, None] * g.n_bins + bins[None, :]).reshape(-1)
                sub, sub_t = (
                    sparse.select_rows(self._full.matrix, lors),
                    sparse.select_columns(self._full.matrix_t, lors),
                )
                ops.append(SparseOperator.from_pair(sub, sub_t, lors))
            self._subsets[n_subsets] = ops
        return self._subsets[n_subsets]

    def __repr__(self) -> str:
        return (
            f"Projector({self.geometry}, normalize={self.normalize}, "
            f"attenuation={'yes' if self.attenuation is not None else 'no'}, device={self.device}, dtype={self.dtype})"
        )
