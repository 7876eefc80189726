"""The shared per-element helpers: bit-exact fp16/bf16 rounding, and the row weights."""
import numba
import numpy as np
import pytest
import torch

from gpumix.kernels import arith


@numba.njit
def _encode_all(values, enc):
    out = np.empty(values.size, np.int16)
    arith.encode_row(out, values, enc)
    return out


def _interesting_floats(seed):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    # every fp16 value and the midpoints between neighbours (the ties), both signs
    halves = np.arange(0, 0x7C01, dtype=np.uint16).view(np.float16).astype(np.float32)
    mids = ((halves[:-1].astype(np.float64) + halves[1:]) / 2).astype(np.float32)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, 65504, 65519.996, 65520, 2**-24, 2**-25, 2**-25 * 1.0001,
                         2**-14, 3.4e38, 1e-45], dtype=np.float32)
    values = np.concatenate([bits.view(np.float32), halves, mids, np.nextafter(mids, np.float32(np.inf)),
                             np.nextafter(mids, np.float32(-np.inf)), specials])
    values = np.concatenate([values, -values])
    return values[~np.isnan(values)]


@pytest.mark.parametrize("enc, dtype", [(arith.ENC_F16, torch.float16), (arith.ENC_BF16, torch.bfloat16)])
def test_half_rounding_is_bit_exact_with_torch(enc, dtype):
    values = _interesting_floats(seed=enc)
    got = _encode_all(values, enc)
    want = torch.from_numpy(values).to(dtype).view(torch.int16).numpy()
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} mismatches, first {values[bad[0]]!r}: {got[bad[0]]:#x} != {want[bad[0]]:#x}"


@pytest.mark.parametrize("enc, dtype", [(arith.ENC_F16, torch.float16), (arith.ENC_BF16, torch.bfloat16)])
def test_nan_stays_nan(enc, dtype):
    got = _encode_all(np.array([np.nan, -np.nan], np.float32), enc)
    assert torch.from_numpy(got).view(dtype).isnan().all()


def test_row_weights_mixup_cutmix_and_rows_outside_the_box():
    lam = np.float32(0.3)
    assert arith.row_weights(lam, 0, 0, 0, 0, 5) == (0, 0, lam, lam)  # empty box: mixup
    assert arith.row_weights(lam, 2, 3, 6, 8, 4) == (3, 8, 0.0, 1.0)  # inside rows: partner in [3, 8)
    xs, xe, w_in, w_out = arith.row_weights(lam, 2, 3, 6, 8, 6)  # y1 is exclusive
    assert xs == xe and w_out == 1.0


def test_soft_target_row_sums_to_one_with_smoothing():
    eps, k = np.float32(0.1), 7
    row = [arith.soft_target(c, 2, 5, np.float32(0.25), eps, k) for c in range(k)]
    assert sum(row) == pytest.approx(1.0, abs=1e-6)
    assert row[2] == pytest.approx(0.9 * 0.25 + 0.1 / 7, rel=1e-6)
    assert row[0] == pytest.approx(0.1 / 7, rel=1e-6)
