"""What a row that an erasing box crosses costs the CPU twin, against a row no box crosses (docs/benchmarks.md).

    python docs/scripts/erase_row_cost.py

One thread, 224-pixel rows, 3 channels, mixup weight 0.3, 50,000 rows per figure (ns per row):
- fp32 NCHW and bf16 channels_last: the fast row (``_plain_row``) and rows crossed by one box of the
  sample at [60, 155), [0, 100) and [130, 224), 'const' and 'pixel';
- fp32 NCHW, ``_pieces`` alone: one piece over the row, three plain pieces on 8-pixel bounds, and the same
  three with the middle one erased (the cost of the pieces themselves, then of an erased piece);
- the cut of a row into its pieces (``_cut``).
"""
import time

import numba
import numpy as np

from gpumix.kernels import arith
from gpumix.kernels import mix_normalize_cpu as cpu

W, C, H = 224, 3, 224
ROWS = 50_000


@numba.njit
def _crossed(n, out, si, sj, mean, inv, mean_k, inv_k, enc, nhwc, eboxes, ecolors, colors_k, ekeys, noise, table,
             work):
    for r in range(n):
        cpu._row(out, 0, 1, r % H, H, si, sj, np.int32(0), np.int32(0), np.float32(.3), np.float32(.3), mean, inv,
                 mean_k, inv_k, enc, nhwc, False, eboxes, ecolors, colors_k, ekeys, noise, table, work)


@numba.njit
def _plain(n, out, si, sj, mean, inv, mean_k, inv_k, enc, nhwc, scratch):
    for r in range(n):
        cpu._plain_row(out, 0, r % H, si, sj, np.int32(0), np.int32(0), np.float32(.3), np.float32(.3), mean, inv,
                       mean_k, inv_k, enc, nhwc, scratch)


@numba.njit
def _pieces(n, d, pieces, count, si, sj, mean, inv, mean_k, inv_k, ecolors, colors_k, ekeys, table):
    for r in range(n):
        h = r % H
        cpu._pieces(d, np.uint64(h * W), H * W, True, pieces, count, si, sj, 0, 1, h, np.int32(0), np.int32(0),
                    np.float32(.3), np.float32(.3), mean, inv, mean_k, inv_k, False, ecolors, colors_k, ekeys,
                    False, table)


@numba.njit
def _cuts(n, eboxes, work):
    total = 0
    for r in range(n):
        total += cpu._cut(work[0], work[1], 0, 1, r % H, W, np.int32(0), np.int32(0), eboxes)
    return total


def _ns(fn) -> float:
    fn(10)
    start = time.perf_counter()
    fn(ROWS)
    return (time.perf_counter() - start) / ROWS * 1e9


def main() -> None:
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    si = rng.integers(0, 256, W * C, dtype=np.uint8)
    sj = rng.integers(0, 256, W * C, dtype=np.uint8)
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    inv = (1 / np.array([58.395, 57.12, 57.375])).astype(np.float32)
    mean_k, inv_k = np.tile(mean, W), np.tile(inv, W)
    ecolors = rng.standard_normal((2, 1, C)).astype(np.float32)
    ekeys = np.array([5, 7], np.int64)
    colors_k = np.zeros(W * C, np.float32)
    work = (np.empty((7, 4), np.int64), np.empty(8, np.int64), np.empty(W * C, np.float32))
    for enc, nhwc, name in ((arith.ENC_F32, False, "fp32 NCHW"), (arith.ENC_BF16, True, "bf16 channels_last")):
        table = cpu._table(W * C) if nhwc else cpu._planar_table(W)  # as launch chooses
        out = np.zeros((2, C, H, W) if not nhwc else (2, H, W, C), np.float32 if enc == arith.ENC_F32 else np.int16)
        plain = _ns(lambda n: _plain(n, out, si, sj, mean, inv, mean_k, inv_k, enc, nhwc, work[2]))
        crossed = []
        for box in ((0, 60, H, 155), (0, 0, H, 100), (0, 130, H, 224)):
            eboxes = np.array([[box], [[0, 0, 0, 0]]], np.int32)
            for noise in (False, True):
                crossed.append(_ns(lambda n: _crossed(n, out.reshape(-1), si, sj, mean, inv, mean_k, inv_k, enc, nhwc,
                                                      eboxes, ecolors, colors_k, ekeys, noise, table, work)))
        print(f"{name}: fast row {plain:.0f} ns; crossed at [60,155) const/pixel, [0,100), [130,224): "
              + ", ".join(f"{x:.0f}" for x in crossed))
    d = np.zeros(C * H * W, np.float32)
    for label, rows in (("1 piece", [[0, W, 0, 0]]), ("3 plain pieces", [[0, 64, 0, 0], [64, 160, 0, 0],
                                                                          [160, W, 0, 0]]),
                        ("3 pieces, middle erased", [[0, 64, 0, 0], [64, 160, 1, 0], [160, W, 0, 0]])):
        p = np.array(rows, np.int64)
        ns = _ns(lambda n: _pieces(n, d, p, len(rows), si, sj, mean, inv, mean_k, inv_k, ecolors, colors_k, ekeys,
                                   cpu._planar_table(W)))
        print(f"_pieces, fp32 NCHW, {label}: {ns:.0f} ns")
    eboxes = np.array([[(0, 60, H, 155)], [[0, 0, 0, 0]]], np.int32)
    print(f"_cut of a row crossed by one box: {_ns(lambda n: _cuts(n, eboxes, work)):.0f} ns")


if __name__ == "__main__":
    main()
