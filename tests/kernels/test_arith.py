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


@pytest.mark.parametrize("enc, dtype", [(arith.ENC_F16, torch.float16), (arith.ENC_BF16, torch.bfloat16)])
def test_half_rounding_is_bit_exact_with_torch(interesting_floats, enc, dtype):
    values = interesting_floats(seed=enc)
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
