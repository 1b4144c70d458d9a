"""Torch sparse-CSR helpers that run on any device (construction, transpose, row selection)."""

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


def row_ids(matrix: torch.Tensor) -> torch.Tensor:
    """Row index of every stored entry of a CSR matrix (int64)."""
    crow = matrix.crow_indices().long()
    counts = crow[1:] - crow[:-1]
    return torch.repeat_interleave(torch.arange(counts.shape[0], device=crow.device), counts)


def transpose(matrix: torch.Tensor) -> torch.Tensor:
    """Aᵀ as CSR: a stable sort of the entries by column keeps each new row's columns sorted."""
    n_rows, n_cols = matrix.shape
    cols = matrix.col_indices().long()
    order = torch.sort(cols, stable=True).indices
    counts = torch.bincount(cols, minlength=n_cols)
    crow = torch.zeros(n_cols + 1, dtype=torch.int64, device=cols.device)
    torch.cumsum(counts, 0, out=crow[1:])
    return csr(crow, row_ids(matrix)[order], matrix.values()[order], (n_cols, n_rows))


def select_rows(matrix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The CSR matrix made of the given rows (in the given order)."""
    crow = matrix.crow_indices().long()
    rows = rows.to(device=crow.device, dtype=torch.int64)
    starts = crow[rows]
    counts = crow[rows + 1] - starts
    new_crow = torch.zeros(rows.shape[0] + 1, dtype=torch.int64, device=crow.device)
    torch.cumsum(counts, 0, out=new_crow[1:])
    nnz = int(new_crow[-1])
    # entry e of new row r comes from old position starts[r] + (e - new_crow[r])
    source = torch.arange(nnz, device=crow.device) + torch.repeat_interleave(starts - new_crow[:-1], counts)
    return csr(new_crow, matrix.col_indices()[source], matrix.values()[source], (rows.shape[0], matrix.shape[1]))


def scale_rows(matrix: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """diag(factors) · A as a new CSR matrix with the same pattern."""
    values = matrix.values() * factors.to(matrix.values())[row_ids(matrix)]
    return csr(matrix.crow_indices(), matrix.col_indices(), values, tuple(matrix.shape))


def column_sums(matrix: torch.Tensor) -> torch.Tensor:
    """Σ_i A[i, j] accumulated in float64 (exact enough to check normalisation)."""
    out = torch.zeros(matrix.shape[1], dtype=torch.float64, device=matrix.values().device)
    return out.index_add_(0, matrix.col_indices().long(), matrix.values().double())
