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

import numpy as np
import torch

__all__ = ["NOISE_BITS", "NOISE_SIZE", "hash32", "table", "padded_table"]

# 2**16 float32 values, 256 KiB: small enough for a CPU core's L2 and a GPU's L2, though the output a kernel
# streams evicts it there (docs/benchmarks.md, fourth pass on erasing).
NOISE_BITS = 16
NOISE_SIZE = 1 << NOISE_BITS
_MASK = 0xFFFFFFFF


def hash32(x: torch.Tensor) -> torch.Tensor:
    """``gpumix.kernels.arith.hash32`` (Wellons' lowbias32) on an int64 tensor of uint32 values.

    Written with torch integer ops for the table's order and the float64
    reference; the kernels use ``arith.hash32``. Importing this module does
    not import numba (the reference must not switch numba on before the
    CUDA simulator can be).
    """
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


@functools.lru_cache(maxsize=1)
def table() -> np.ndarray:
    """float32 ``(NOISE_SIZE,)``, read-only: the noise table (built on first use, about 0.1 s, then cached)."""
    quantile = statistics.NormalDist().inv_cdf  # pure Python (Wichura's AS241): the same values everywhere
    values = np.array([quantile((i + 0.5) / NOISE_SIZE) for i in range(NOISE_SIZE)], np.float64)
    order = torch.argsort(hash32(torch.arange(NOISE_SIZE, dtype=torch.int64)), stable=True).numpy()
    shuffled = values[order].astype(np.float32)
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
