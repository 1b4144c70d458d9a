"""Exact ray/pixel intersection lengths (Siddon 1985), vectorised over lines and pixel strips.

A line that is closer to horizontal than to vertical crosses every pixel column ("strip") over a
height of at most one pixel, so inside one column it touches at most two pixels; the same holds for
rows and steep lines. Splitting each strip at its single interior grid line gives the exact lengths
with fixed-size arrays (no per-line sort of crossing parameters, no Python loop over lines).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from petdiff.physics.geometry import Geometry

# lengths below this fraction of a pixel width are rounding noise (lines through grid corners)
_DROP = 1e-12
# entries (lines × strips) processed at once: bounds the temporary memory (~25 arrays of 8 bytes each)
_CHUNK_ENTRIES = 1 << 19


def _strip_lengths(a: np.ndarray, b: np.ndarray, s: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Lines u·a + v·b = s, |b| ≥ |a| (shape (L, 1)), through strips u ∈ [u_j, u_j + w]: lengths in pixels m, m+1.

    Returns the transverse pixel index m (L, n, 2) and the lengths (L, n, 2); the length of the part of a
    strip's segment with v ∈ [p, q] is (q - p)/|a| (= (q - p)/(hi - lo) · w/|b|), or w/|b| when a = 0.
    """
    w = 2.0 / n
    u = -1.0 + w * np.arange(n + 1, dtype=np.float64)
    v = (s - a * u) / b  # transverse coordinate at the strip edges, (L, n+1)
    lo = np.minimum(v[:, :-1], v[:, 1:])
    hi = np.maximum(v[:, :-1], v[:, 1:])
    lo_c = np.maximum(lo, -1.0)
    hi_c = np.minimum(hi, 1.0)
    m = np.clip(np.floor((lo_c + 1.0) / w), 0, n - 1)
    g = -1.0 + (m + 1.0) * w  # the one grid line a strip segment can cross
    with np.errstate(divide="ignore"):
        per_v = np.where(a == 0.0, 0.0, 1.0 / np.abs(a))
    first = np.maximum(np.minimum(hi_c, g) - lo_c, 0.0) * per_v
    second = np.maximum(hi_c - g, 0.0) * per_v

    flat = (a == 0.0)[:, 0]
    if flat.any():
        # the line runs along the strips at constant v: the full strip length goes to the pixel holding v,
        # or half to each side when v lies exactly on a grid line (the mean of the two one-sided limits)
        vf = v[flat, :1]
        r = (vf + 1.0) / w
        k = np.rint(r)
        on_edge = np.abs(r - k) < 1e-9
        full = w / np.abs(b[flat])
        below = np.where(on_edge, k - 1.0, np.floor(r))
        m[flat] = np.broadcast_to(below, (below.shape[0], n))
        inside_lo = (below >= 0) & (below <= n - 1)
        inside_hi = on_edge & (k >= 0) & (k <= n - 1)
        first[flat] = np.broadcast_to(np.where(inside_lo, np.where(on_edge, full / 2, full), 0.0), (vf.shape[0], n))
        second[flat] = np.broadcast_to(np.where(inside_hi, full / 2, 0.0), (vf.shape[0], n))
    return m, np.stack([first, second], axis=-1)


def line_entries(phi: np.ndarray, s: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidates (pixel index, length), each (L, 2n), of lines x·cos φ + y·sin φ = s on an n×n grid of [-1, 1]².

    Pixels are row-major with row 0 at y = +1; a candidate of length 0 is no intersection and its index may
    lie outside the grid.
    """
    c = np.cos(phi)
    sn = np.sin(phi)
    # exact zeros at 0 and π/2, so lines along the grid take the parallel branch instead of a 1e-17 slope
    c[np.abs(c) < 1e-14] = 0.0
    sn[np.abs(sn) < 1e-14] = 0.0
    n_lines = phi.shape[0]
    pixel = np.empty((n_lines, n, 2), dtype=np.int64)
    length = np.empty((n_lines, n, 2), dtype=np.float64)
    j = np.arange(n, dtype=np.int64)[None, :, None]
    step = np.array([0, 1], dtype=np.int64)[None, None, :]

    cols = np.abs(sn) >= np.abs(c)  # near-horizontal: column strips u = x, v = y
    if cols.any():
        m, ln = _strip_lengths(c[cols, None], sn[cols, None], s[cols, None], n)
        pixel[cols] = (n - 1 - (m.astype(np.int64)[..., None] + step)) * n + j
        length[cols] = ln
    rows = ~cols  # near-vertical: row strips u = y, v = x
    if rows.any():
        m, ln = _strip_lengths(sn[rows, None], c[rows, None], s[rows, None], n)
        pixel[rows] = (n - 1 - j) * n + (m.astype(np.int64)[..., None] + step)
        length[rows] = ln
    return pixel.reshape(n_lines, 2 * n), length.reshape(n_lines, 2 * n)


def iter_rows(geometry: Geometry) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield CSR pieces (row nnz counts, column indices int64, lengths float64) for consecutive blocks of LORs.

    Row i·n_bins + k is the line x·cos φ_i + y·sin φ_i = s_k; columns are sorted within each row.
    """
    n = geometry.resolution
    phi_all = geometry.angles()
    s_all = geometry.offsets()
    n_bins = geometry.n_bins
    angles_per_chunk = max(1, _CHUNK_ENTRIES // (n * n_bins))
    drop = _DROP * geometry.pixel_size
    for start in range(0, geometry.n_angles, angles_per_chunk):
        phi = np.repeat(phi_all[start : start + angles_per_chunk], n_bins)
        s = np.tile(s_all, phi.shape[0] // n_bins)
        pixel, length = line_entries(phi, s, n)
        keep = length > drop
        key = np.where(keep, pixel, n * n)  # dropped entries sort to the end of their row
        order = np.argsort(key, axis=1)
        pixel = np.take_along_axis(pixel, order, axis=1)
        length = np.take_along_axis(length, order, axis=1)
        keep = np.take_along_axis(keep, order, axis=1)
        yield keep.sum(axis=1), pixel[keep], length[keep]
