"""A kernel applied to one row chunk, cache-sized sub-block by sub-block."""

from __future__ import annotations

import numpy as np

#: Rows of the sub-blocks a kernel is applied to within a chunk. A block of up to ~32
#: features (2 MiB) stays in cache, so a kernel's second pass over it (Xᵀr after r = Xw - y,
#: say) reads cache, not memory; and a column of it (64 KiB) is below glibc's mmap threshold,
#: so per-block temporaries reuse heap memory instead of faulting in fresh pages each time.
BLOCK_ROWS = 8192


def row_slices(n_rows: int, step: int) -> list[slice]:
    """Consecutive slices of ``step`` rows covering ``n_rows`` rows (at least one slice)."""
    return [slice(start, min(start + step, n_rows)) for start in range(0, max(n_rows, 1), step)]


def chunk_sum(kernel, x, y) -> np.ndarray:
    """``kernel(x, y)`` of one row block, as the sum of the kernel over its sub-blocks (in
    order): kernels return sums, so splitting the rows changes only the cache traffic."""
    blocks = iter(row_slices(x.shape[0], BLOCK_ROWS))
    first = next(blocks)
    total = kernel(x[first], y[first])
    for rows in blocks:
        total = total + kernel(x[rows], y[rows])
    return total


def aligned(a):
    """``a``, or an aligned copy of it if a transfer between processes left it misaligned:
    numpy then computes a matrix product with its own loops instead of BLAS, which round
    differently, and the same chunk would give other bits on another worker."""
    return a if a.flags.aligned else a.copy()
