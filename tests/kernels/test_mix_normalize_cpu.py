"""The CPU twin against the float64 reference, on fresh random inputs and poisoned outputs."""
import pytest
import torch

from gpumix.kernels import mix_normalize_cpu
from gpumix.kernels.reference import mix_normalize_reference

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
def test_cpu_twin_matches_reference(make_case, launch_poisoned, assert_matches_reference,
                                    dtype, channels_last, channels):
    seed = DTYPES.index(dtype) * 4 + channels_last * 2 + channels
    batch, labels, params, mean, std = make_case(7, 9, 13, channels, 11, seed=seed)
    before = batch.clone()
    got = launch_poisoned(mix_normalize_cpu, batch, labels, params, mean, std, 11, 0.1, dtype, channels_last, True)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 11, 0.1)
    assert_matches_reference(*got, *ref, dtype)
    assert torch.equal(batch, before)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert got[0].is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_outputs_are_the_fp32_outputs_rounded(make_case, launch_poisoned, dtype):
    batch, labels, params, mean, std = make_case(5, 16, 24, 3, 10, seed=3)
    full = launch_poisoned(mix_normalize_cpu, batch, labels, params, mean, std, 10, 0.0, torch.float32, False, False)
    half = launch_poisoned(mix_normalize_cpu, batch, labels, params, mean, std, 10, 0.0, dtype, False, False)
    assert torch.equal(half[0].view(torch.int16), full[0].to(dtype).view(torch.int16))


def test_large_batch_without_boxes_matches_reference(make_case, launch_poisoned, assert_matches_reference):
    batch, labels, params, mean, std = make_case(33, 32, 40, 3, 100, seed=9, boxes=False)
    got = launch_poisoned(mix_normalize_cpu, batch, labels, params, mean, std, 100, 0.0, torch.float32, False, False)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, None, mean, std, 100)
    assert_matches_reference(got[0], got[1], None, ref[0], ref[1], None, torch.float32)
