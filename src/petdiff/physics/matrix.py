"""The PET system matrix A[i, j] = length of LOR i inside pixel j, sparse CSR, disk-cached."""

from __future__ import annotations

import numpy as np
import torch

from petdiff.physics import cache as _cache
from petdiff.physics.geometry import Geometry
from petdiff.physics.siddon import iter_rows, nnz_bound
from petdiff.physics.sparse import csr


def build_arrays(geometry: Geometry) -> dict[str, np.ndarray]:
    """Raw CSR arrays of A: crow (int64), cols (int32), values (float32 lengths), column_sums Σ_i A[i, j] (float64).

    Entries are written straight into buffers sized by `nnz_bound` (within 3 % of nnz), so the peak memory is
    the matrix plus one block of lines, not the matrix twice.
    """
    capacity = nnz_bound(geometry)
    cols = np.empty(capacity, dtype=np.int32)
    values = np.empty(capacity, dtype=np.float32)
    counts = np.empty(geometry.n_lors, dtype=np.int64)
    sums = np.zeros(geometry.n_pixels, dtype=np.float64)
    nnz = row = 0
    for row_counts, c, v in iter_rows(geometry):
        if nnz + c.shape[0] > capacity:  # cannot happen if the bound holds; stay correct if it does not
            capacity = max(2 * capacity, nnz + c.shape[0])
            cols, values = np.resize(cols, capacity), np.resize(values, capacity)
        sums += np.bincount(c, weights=v, minlength=geometry.n_pixels)  # from the exact float64 lengths
        cols[nnz : nnz + c.shape[0]] = c
        values[nnz : nnz + c.shape[0]] = v
        counts[row : row + row_counts.shape[0]] = row_counts
        nnz += c.shape[0]
        row += row_counts.shape[0]
    crow = np.zeros(geometry.n_lors + 1, dtype=np.int64)
    np.cumsum(counts, out=crow[1:])
    return {"crow": crow, "cols": cols[:nnz], "values": values[:nnz], "column_sums": sums}


def load_arrays(geometry: Geometry, cache: bool = True) -> dict[str, np.ndarray]:
    """Raw CSR arrays of A from the disk cache (verified) or freshly built (and then cached)."""
    if cache:
        arrays = _cache.load(geometry)
        if arrays is not None:
            return arrays
    arrays = build_arrays(geometry)
    if cache:
        _cache.save(geometry, arrays)
    return arrays


def transpose_arrays(arrays: dict[str, np.ndarray], n_cols: int, block_nnz: int = 1 << 18) -> dict[str, np.ndarray]:
    """CSR arrays of Aᵀ (rows = pixels, columns sorted) from those of A, with Aᵀ's column sums (A's row sums).

    Blocks of rows are sorted by column on their own (cache-sized argsorts), then scattered to their slots:
    the rows of A arrive in increasing order, so every row of Aᵀ comes out sorted without a global sort.
    """
    crow, cols, values = arrays["crow"], arrays["cols"], arrays["values"]
    n_rows, nnz = crow.shape[0] - 1, cols.shape[0]
    crow_t = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(np.bincount(cols, minlength=n_cols), out=crow_t[1:])
    cols_t = np.empty(nnz, dtype=np.int32)
    values_t = np.empty(nnz, dtype=values.dtype)
    next_slot = crow_t[:-1].copy()
    row_sums = np.zeros(n_rows, dtype=np.float64)
    start = 0
    while start < n_rows:
        end = min(n_rows, max(start + 1, int(np.searchsorted(crow, crow[start] + block_nnz, side="right")) - 1))
        lo, hi = int(crow[start]), int(crow[end])
        c, v = cols[lo:hi], values[lo:hi]
        r = np.repeat(np.arange(start, end, dtype=np.int32), np.diff(crow[start : end + 1]))
        row_sums[start:end] = np.bincount(r - start, weights=v, minlength=end - start)
        order = np.argsort(c, kind="stable")
        c_sorted = c[order]
        per_col = np.bincount(c, minlength=n_cols)
        first = np.cumsum(per_col) - per_col  # where each column starts in this block's sorted list
        dest = next_slot[c_sorted] + (np.arange(hi - lo) - first[c_sorted])
        cols_t[dest] = r[order]
        values_t[dest] = v[order]
        next_slot += per_col
        start = end
    return {"crow": crow_t, "cols": cols_t, "values": values_t, "column_sums": row_sums}


def load_transposed(geometry: Geometry, arrays: dict[str, np.ndarray], cache: bool = True) -> dict[str, np.ndarray]:
    """Raw CSR arrays of Aᵀ from the disk cache, or transposed from A's `arrays` (and then cached)."""
    if cache:
        cached = _cache.load(geometry, kind="AT")
        if cached is not None:
            return cached
    arrays_t = transpose_arrays(arrays, geometry.n_pixels)
    if cache:
        _cache.save(geometry, arrays_t, kind="AT")
    return arrays_t


def normalized_values(arrays: dict[str, np.ndarray], inplace: bool = False, block: int = 1 << 20) -> np.ndarray:
    """A[i, j] / Σ_i A[i, j] for every stored entry (columns no line crosses stay empty), in blocks of entries.

    Blocks keep the temporary gather small; `inplace` overwrites arrays["values"] (peak memory = the matrix).
    """
    sums = arrays["column_sums"]
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0).astype(np.float32)
    values, cols = arrays["values"], arrays["cols"]
    out = values if inplace else np.empty_like(values)
    for start in range(0, values.shape[0], block):
        part = slice(start, start + block)
        np.multiply(values[part], inv[cols[part]], out=out[part])
    return out


def scale_in_place(
    arrays: dict[str, np.ndarray],
    row_factors: np.ndarray | None = None,
    col_factors: np.ndarray | None = None,
    block_rows: int = 1 << 12,
) -> np.ndarray:
    """values[e] *= r[row(e)]·c[col(e)] over blocks of rows (no nnz-sized temporaries); returns arrays["values"]."""
    crow, cols, values = arrays["crow"], arrays["cols"], arrays["values"]
    n_rows = crow.shape[0] - 1
    for start in range(0, n_rows, block_rows):
        stop = min(n_rows, start + block_rows)
        part = slice(int(crow[start]), int(crow[stop]))
        if row_factors is not None:
            values[part] *= np.repeat(row_factors[start:stop].astype(values.dtype), np.diff(crow[start : stop + 1]))
        if col_factors is not None:
            values[part] *= col_factors.astype(values.dtype, copy=False)[cols[part]]
    return values


def system_matrix(geometry_or_resolution: Geometry | int, normalize: bool = True, cache: bool = True) -> torch.Tensor:
    """A ∈ R^{d×p} (d = n_angles·n_bins, p = H²) of Siddon lengths as sparse CSR float32; Σ_i A[i, j] = 1 if normalize.

    Example: ``A = system_matrix(64); y = A @ x.reshape(-1, 1)`` for a 64×64 image ``x``.
    """
    geometry = Geometry.coerce(geometry_or_resolution)
    arrays = load_arrays(geometry, cache=cache)
    # the arrays are this call's own copy: normalise in place instead of holding raw and normalised values
    values = normalized_values(arrays, inplace=True) if normalize else arrays["values"]
    return csr(
        torch.from_numpy(arrays["crow"]),
        torch.from_numpy(arrays["cols"]),
        torch.from_numpy(values),
        (geometry.n_lors, geometry.n_pixels),
    )
