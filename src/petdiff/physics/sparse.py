"""Torch sparse-CSR helpers that run on any device (construction, row and column selection)."""

from __future__ import annotations

import warnings

import torch

_INT32_MAX = 2**31 - 1


def index_dtype(nnz: int, *dims: int) -> torch.dtype:
    """int32 indices while they fit (half the memory, and the native MKL/cuSPARSE index type), else int64."""
    return torch.int32 if max(nnz, *dims) <= _INT32_MAX else torch.int64


def csr(crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Sparse CSR tensor from row pointers, column indices (sorted within rows) and values."""
    dtype = index_dtype(values.shape[0], *shape)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(crow.to(dtype), cols.to(dtype), values, size=shape, check_invariants=False)


def _pointers(counts: torch.Tensor) -> torch.Tensor:
    """Row pointers [0, c0, c0 + c1, …] from per-row counts."""
    crow = torch.zeros(counts.shape[0] + 1, dtype=torch.int64, device=counts.device)
    torch.cumsum(counts, 0, out=crow[1:])
    return crow


def select_rows(matrix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The CSR matrix made of the given rows (in the given order)."""
    crow = matrix.crow_indices().long()
    rows = rows.to(device=crow.device, dtype=torch.int64)
    starts = crow[rows]
    counts = crow[rows + 1] - starts
    new_crow = _pointers(counts)
    nnz = int(new_crow[-1])
    # entry e of new row r comes from old position starts[r] + (e - new_crow[r])
    source = torch.arange(nnz, device=crow.device) + torch.repeat_interleave(starts - new_crow[:-1], counts)
    return csr(new_crow, matrix.col_indices()[source], matrix.values()[source], (rows.shape[0], matrix.shape[1]))


def select_columns(matrix: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """The CSR matrix made of the given increasing columns (renumbered 0 … len-1; rows stay sorted)."""
    device = matrix.values().device
    columns = columns.to(device=device, dtype=torch.int64)
    new_index = torch.full((matrix.shape[1],), -1, dtype=torch.int64, device=device)
    new_index[columns] = torch.arange(columns.shape[0], device=device)
    mapped = new_index[matrix.col_indices().long()]
    keep = mapped >= 0
    crow = matrix.crow_indices().long()
    kept_before = torch.zeros(keep.shape[0] + 1, dtype=torch.int64, device=device)
    torch.cumsum(keep, 0, out=kept_before[1:])
    return csr(kept_before[crow], mapped[keep], matrix.values()[keep], (matrix.shape[0], columns.shape[0]))


def row_sums(matrix: torch.Tensor, block_nnz: int = 1 << 22) -> torch.Tensor:
    """Σ_j A[i, j] per row, accumulated in float64 over blocks of rows (temporaries ≤ block_nnz entries)."""
    crow = matrix.crow_indices().long()
    values = matrix.values()
    n_rows = matrix.shape[0]
    out = torch.zeros(n_rows, dtype=torch.float64, device=values.device)
    start = 0
    while start < n_rows:
        stop = int(torch.searchsorted(crow, crow[start] + block_nnz, right=True)) - 1
        stop = min(n_rows, max(stop, start + 1))
        counts = crow[start + 1 : stop + 1] - crow[start:stop]
        rows = torch.repeat_interleave(torch.arange(stop - start, device=values.device), counts)
        out[start:stop].index_add_(0, rows, values[crow[start] : crow[stop]].double())
        start = stop
    return out
