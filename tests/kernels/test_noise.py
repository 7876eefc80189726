"""The pixel noise's table and its runs: exact N(0, 1) quantiles, fresh and uncorrelated runs per row."""
import statistics

import numpy as np
import pytest
import torch

from gpumix.kernels import arith, noise
from gpumix.kernels.reference import noise_reference


def test_table_holds_the_normal_quantiles_shuffled_and_read_only():
    table = noise.table()
    assert table.dtype == np.float32 and table.shape == (noise.NOISE_SIZE,) and not table.flags.writeable
    quantile = statistics.NormalDist().inv_cdf
    expected = np.array([quantile((i + 0.5) / noise.NOISE_SIZE) for i in range(noise.NOISE_SIZE)], np.float32)
    assert np.array_equal(np.sort(table), expected)
    assert abs(float(table.astype(np.float64).mean())) < 1e-6 and 0.9999 < float(table.astype(np.float64).var()) < 1
    # shuffled: neighbours are not sorted, and not correlated
    assert abs(float(np.corrcoef(table[:-1], table[1:])[0, 1])) < 0.02


def test_padded_table_continues_the_table_and_refuses_a_bad_span():
    padded = noise.padded_table(100)
    assert padded.shape == (noise.NOISE_SIZE + 100,) and not padded.flags.writeable
    assert np.array_equal(padded[:noise.NOISE_SIZE], noise.table())
    assert np.array_equal(padded[noise.NOISE_SIZE:], noise.table()[:100])
    with pytest.raises(ValueError, match="span must be a positive int, got 0"):
        noise.padded_table(0)


def test_each_row_reads_its_own_run_of_the_table():
    keys = torch.tensor([3, 3, 77, 2**32 - 1])
    values = noise_reference(keys, 3, 5, 7)  # (B, C, H, W)
    table = torch.from_numpy(noise.table().astype(np.float64))
    for b in range(4):
        for h in range(5):
            start = int(arith.noise_row(int(keys[b]), h))
            run = table[(start + torch.arange(21)) % noise.NOISE_SIZE]
            assert torch.equal(values[b, :, h].permute(1, 0).reshape(-1), run)  # channels_last order
    assert torch.equal(values[0], values[1])  # the same key: the same noise
    assert not torch.equal(values[0], values[2])


def test_noise_is_standard_normal_and_uncorrelated_across_rows_and_columns():
    keys = torch.arange(64) * 7919 + 11
    values = noise_reference(keys, 3, 32, 40)
    flat = values.flatten()
    assert abs(float(flat.mean())) < 0.01 and abs(float(flat.std()) - 1) < 0.01
    cdf = statistics.NormalDist().cdf
    ordered = np.sort(flat.numpy())[::97]
    ecdf = (np.searchsorted(np.sort(flat.numpy()), ordered, side="right")) / flat.numel()
    assert max(abs(e - cdf(x)) for e, x in zip(ecdf, ordered)) < 0.01  # Kolmogorov-Smirnov distance
    for a, b in ((values[..., 1:], values[..., :-1]), (values[:, :, 1:], values[:, :, :-1]),
                 (values[:, 1:], values[:, :-1]), (values[1:], values[:-1])):
        assert abs(float(np.corrcoef(a.flatten(), b.flatten())[0, 1])) < 0.02
    starts = {int(arith.noise_row(int(k), h)) for k in keys for h in range(32)}
    assert len(starts) > 0.95 * 64 * 32  # fresh starts: few rows share one
