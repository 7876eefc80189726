"""Shared inputs of the kernel tests."""
import numpy as np
import pytest


@pytest.fixture
def interesting_floats():
    """Return ``make(seed)``: float32 values that exercise fp16/bf16 rounding, NaN-free.

    2 million random bit patterns, every finite fp16 value, every finite bf16
    value, the midpoints between neighbours of both (the ties) and the floats
    just above and below each midpoint, the overflow and subnormal edges;
    both signs.
    """

    def make(seed):
        rng = np.random.default_rng(seed)
        bits = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32)
        values = [bits.view(np.float32)]
        for finite in (np.arange(0, 0x7C01, dtype=np.uint16).view(np.float16).astype(np.float32),
                       (np.arange(0, 0x7F81, dtype=np.uint32) << np.uint32(16)).view(np.float32)):
            mids = ((finite[:-1].astype(np.float64) + finite[1:]) / 2).astype(np.float32)
            values += [finite, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf))]
        values.append(np.array([0.0, -0.0, np.inf, -np.inf, 65504, 65519.996, 65520, 2**-24, 2**-25,
                                2**-25 * 1.0001, 2**-14, 3.4e38, 3.3895314e38, 1e-45], dtype=np.float32))
        values = np.concatenate(values)
        values = np.concatenate([values, -values])
        return values[~np.isnan(values)]

    return make
