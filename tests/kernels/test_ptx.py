"""The kernel's PTX primitives: hardware fp16/bf16 rounding against the software path, bit for bit.

On a real GPU (GPUMIX_TEST_REAL_CUDA=1) ``cvt.rn.f16x2.f32`` / ``cvt.rn.bf16x2.f32``
must give exactly the bits of ``gpumix.kernels.arith``'s round-to-nearest-even
and of torch's casts; under the simulator the same kernels check the software
packing (high/low halves) against torch.
"""
import numpy as np
import pytest
import torch
from numba import config as numba_config
from numba import cuda

from gpumix.kernels import ptx

real_cuda = pytest.mark.skipif(numba_config.ENABLE_CUDASIM or not torch.cuda.is_available(),
                               reason="needs a CUDA GPU and GPUMIX_TEST_REAL_CUDA=1")


def _pack_kernel(convert):
    @cuda.jit
    def pack(values, out):
        i = cuda.grid(1)
        if 2 * i + 1 < values.size:
            out[i] = convert(values[2 * i + 1], values[2 * i])  # upper half: the odd element
    return pack


def _packed(convert, values):
    values = np.ascontiguousarray(values[: values.size // 2 * 2], dtype=np.float32)
    out = np.zeros(values.size // 2, dtype=np.uint32)
    blocks = -(-out.size // 256)
    if numba_config.ENABLE_CUDASIM:
        values, out = values[:4096], out[:2048]  # the simulator runs every thread in Python
        blocks = -(-out.size // 256)
    d_values, d_out = cuda.to_device(values), cuda.to_device(out)
    _pack_kernel(convert)[blocks, 256](d_values, d_out)
    return values, d_out.copy_to_host()


def _torch_bits(values, dtype):
    return torch.from_numpy(values).to(dtype).view(torch.int16).numpy().view(np.uint16)


@pytest.mark.parametrize("convert, software, dtype", [
    (ptx.cvt_f16x2, ptx.sw_pack_f16x2, torch.float16),
    (ptx.cvt_bf16x2, ptx.sw_pack_bf16x2, torch.bfloat16),
], ids=["f16", "bf16"])
def test_packed_rounding_matches_torch_and_the_software_path(interesting_floats, convert, software, dtype):
    if not numba_config.ENABLE_CUDASIM and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU or NUMBA_ENABLE_CUDASIM=1")
    values = interesting_floats(seed=3)
    values, hardware = _packed(convert, values)
    want = _torch_bits(values, dtype)
    got = np.stack([hardware & 0xFFFF, hardware >> 16], axis=1).reshape(-1).astype(np.uint16)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} mismatches, first {values[bad[0]]!r}: {got[bad[0]]:#x} != {want[bad[0]]:#x}"
    _, soft = _packed(software, values)
    assert np.array_equal(hardware, soft)


@real_cuda
def test_hardware_rounding_is_used_on_sm80_and_newer():
    # The real-GPU kernels are not the simulator's Python fallbacks.
    assert torch.cuda.get_device_capability() >= (8, 0)
    assert ptx.cvt_bf16x2 is not ptx.sw_pack_bf16x2


def _single_kernel(convert):
    @cuda.jit
    def one(values, out):
        i = cuda.grid(1)
        if i < values.size:
            out[i] = convert(values[i])
    return one


@pytest.mark.parametrize("convert, dtype", [(ptx.cvt_f16, torch.float16), (ptx.cvt_bf16, torch.bfloat16)],
                         ids=["f16", "bf16"])
def test_single_value_rounding_matches_torch(interesting_floats, convert, dtype):
    if not numba_config.ENABLE_CUDASIM and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU or NUMBA_ENABLE_CUDASIM=1")
    values = interesting_floats(seed=4)
    if numba_config.ENABLE_CUDASIM:
        values = values[:4096]
    out = cuda.to_device(np.zeros(values.size, dtype=np.uint16))
    _single_kernel(convert)[-(-values.size // 256), 256](cuda.to_device(values), out)
    assert np.array_equal(out.copy_to_host(), _torch_bits(values, dtype))
