"""The table random erasing's 'pixel' noise is read from: N(0, 1) quantiles in a fixed pseudo-random order.

Element ``(c, h, w)`` of sample ``b`` takes ``table()[arith.noise_index(key_b,
h, w * C + c)]``: a row's noise is a run of consecutive table values from a
hashed start, in channels_last order, so the CPU twin reads it with vector
loads, and the CUDA kernel, the twin and the float64 reference read the same
float32 values.

The table holds the ``NOISE_SIZE`` quantiles ``Phi^-1((i + 0.5) / N)`` of the
standard normal distribution (mean 0, variance 1 - 2e-5, range +-4.32), so
every value is exactly N(0, 1)'s in distribution; their order is fixed by
sorting a hash of the index. Values within a row are distinct table entries;
two rows share values only where their runs overlap (probability about
``2 * C * W / NOISE_SIZE`` for a pair of rows).
"""
import functools
import statistics

import numba
import numpy as np

from gpumix.kernels import arith

__all__ = ["NOISE_SIZE", "table", "padded_table"]

NOISE_SIZE = arith.NOISE_SIZE


@numba.njit(cache=True)
def _hashes(n):
    out = np.empty(n, np.uint32)
    for i in range(n):
        out[i] = arith.hash32(np.uint32(i))
    return out


@functools.lru_cache(maxsize=1)
def table() -> np.ndarray:
    """float32 ``(NOISE_SIZE,)``, read-only: the noise table (built on first use, about 0.1 s, then cached)."""
    quantile = statistics.NormalDist().inv_cdf  # pure Python (Wichura's AS241): the same values everywhere
    values = np.array([quantile((i + 0.5) / NOISE_SIZE) for i in range(NOISE_SIZE)], np.float64)
    shuffled = values[np.argsort(_hashes(NOISE_SIZE), kind="stable")].astype(np.float32)
    shuffled.flags.writeable = False
    return shuffled


@functools.lru_cache(maxsize=8)
def padded_table(span: int) -> np.ndarray:
    """float32 ``(NOISE_SIZE + span,)``, read-only: ``table()`` followed by its first ``span`` values.

    A row's run of ``span`` (``W * C``) values starting anywhere in
    ``[0, NOISE_SIZE)`` is then one contiguous slice (the CPU twin's loads),
    without wrapping its index.
    """
    if not isinstance(span, int) or span < 1:
        raise ValueError(f"span must be a positive int, got {span!r}")
    padded = np.resize(table(), NOISE_SIZE + span)
    padded.flags.writeable = False
    return padded
