"""The CPU twin's ``_erase_row`` alone: one 224-pixel row crossed by two erasing boxes (docs/benchmarks.md).

    python docs/scripts/erase_row_bench.py

Sample 0's box covers pixels 30-130 and its partner's 60-190 on every row,
so 160 pixels x 3 channels are redone per row (fp32 NCHW, one thread);
prints the time per row for 'const' and 'pixel' erasing.
"""
import time

import numba
import numpy as np

from gpumix.kernels import arith
from gpumix.kernels import mix_normalize_cpu as cpu

W, C, H = 224, 3, 224
ROWS = 20_000


@numba.njit
def _rows(n, noise, flat, si, sj, mean, inv_std, eboxes, ecolors, ekeys, cuts, part_i, part_j):
    for r in range(n):
        cpu._erase_row(flat, flat, False, 0, 1, r % H, H, si, sj, 0, 0, np.float32(0.3), np.float32(0.3), mean,
                       inv_std, eboxes, ecolors, ekeys, noise, arith.ENC_F32, False, cuts, part_i, part_j)


def main() -> None:
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    out = np.zeros((2, C, H, W), np.float32)
    si = rng.integers(0, 256, W * C, dtype=np.uint8)
    sj = rng.integers(0, 256, W * C, dtype=np.uint8)
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    inv_std = (1 / np.array([58.395, 57.12, 57.375])).astype(np.float32)
    eboxes = np.array([[[0, 30, H, 130]], [[0, 60, H, 190]]], np.int32)
    ecolors = rng.standard_normal((2, 1, C)).astype(np.float32)
    ekeys = np.array([5, 7], np.int64)
    args = (out.reshape(out.size), si, sj, mean, inv_std, eboxes, ecolors, ekeys, np.empty(8, np.int64),
            np.empty(W, np.float32), np.empty(W, np.float32))
    for noise in (False, True):
        _rows(10, noise, *args)
        start = time.perf_counter()
        _rows(ROWS, noise, *args)
        per_row = (time.perf_counter() - start) / ROWS
        print(f"{'pixel' if noise else 'const'}: {per_row * 1e9:.0f} ns per row ({per_row / (160 * C) * 1e9:.2f} ns "
              "per erased value)")


if __name__ == "__main__":
    main()
