"""The exact CUDA kernel source: under the numba simulator, compiled to PTX, and on a real GPU when there is one."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from numba import config as numba_config

from gpumix.kernels import mix_normalize_cuda
from gpumix.kernels.reference import mix_normalize_reference

simulator = pytest.mark.skipif(not numba_config.ENABLE_CUDASIM, reason="needs NUMBA_ENABLE_CUDASIM=1")
real_cuda = pytest.mark.skipif(numba_config.ENABLE_CUDASIM or not torch.cuda.is_available(),
                               reason="needs a CUDA GPU and GPUMIX_TEST_REAL_CUDA=1")


@simulator
@pytest.mark.parametrize("dtype, channels_last, channels, n", [
    (torch.float32, False, 3, 5),
    (torch.float32, True, 1, 3),
    (torch.float16, True, 3, 3),
    (torch.bfloat16, False, 3, 4),
    (torch.bfloat16, True, 1, 5),
])
def test_simulated_kernel_matches_reference(make_case, launch_poisoned, assert_matches_reference,
                                            dtype, channels_last, channels, n):
    # 5x35 pixels: two blocks along W, one partial, so block edges are exercised.
    batch, labels, params, mean, std = make_case(n, 5, 35, channels, 6, seed=n + channels)
    before = batch.clone()
    got = launch_poisoned(mix_normalize_cuda, batch, labels, params, mean, std, 6, 0.2, dtype, channels_last, True)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 6, 0.2)
    assert_matches_reference(*got, *ref, dtype)
    assert torch.equal(batch, before)


@simulator
def test_simulated_kernel_agrees_with_cpu_twin(make_case, launch_poisoned):
    from gpumix.kernels import mix_normalize_cpu
    batch, labels, params, mean, std = make_case(3, 9, 33, 3, 5, seed=21)
    gpu = launch_poisoned(mix_normalize_cuda, batch, labels, params, mean, std, 5, 0.0, torch.bfloat16, False, False)
    cpu = launch_poisoned(mix_normalize_cpu, batch, labels, params, mean, std, 5, 0.0, torch.bfloat16, False, False)
    # the simulator does not fuse multiply-adds, so the two agree to the bit
    assert torch.equal(gpu[0].view(torch.int16), cpu[0].view(torch.int16))
    assert torch.equal(gpu[1], cpu[1])


_PTX_SCRIPT = textwrap.dedent("""
    import types
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda
    # Device functions are compiled for the current device; there is none here, so name sm_90.
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))
    from gpumix.kernels.mix_normalize_cuda import mix_normalize_kernel
    for out in ("float32[:, :, :, ::1]", "int16[:, :, :, ::1]"):
        sig = ("void(uint8[:, :, :, ::1], int64[::1], float32[::1], int64[::1], int32[:, ::1], float32[::1], "
               f"float32[::1], float32, int64, {out}, float32[:, ::1], {out}, boolean, boolean)")
        ptx, _ = cuda.compile_ptx(mix_normalize_kernel.py_func, sig, cc=(9, 0))
        assert ".entry" in ptx, out
    print("ok")
""")


def test_kernel_compiles_to_ptx_for_sm90(tmp_path):
    """The real CUDA target (not the simulator) accepts the kernel for both output types."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    try:
        from numba.cuda.cudadrv import nvvm  # noqa: F401
        probe = subprocess.run([sys.executable, "-c", "from numba.cuda.cudadrv.nvvm import NVVM; NVVM()"],
                               env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    except ImportError:
        pytest.skip("numba-cuda has no NVVM binding")
    if probe.returncode != 0:
        pytest.skip(f"libNVVM (CUDA toolkit) not found: {probe.stderr.strip().splitlines()[-1:]}")
    # From tmp_path: the checkout's gpumix/ folder must not shadow the installed package.
    result = subprocess.run([sys.executable, "-c", _PTX_SCRIPT], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


@real_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_real_kernel_matches_reference(make_case, assert_matches_reference, dtype, channels_last):
    import gpumix
    batch, labels, params, mean, std = make_case(67, 61, 97, 3, 1000, seed=5)
    images, targets, clean = gpumix.mix_normalize(batch.cuda(), labels, params, mean=mean, std=std,
                                                  num_classes=1000, label_smoothing=0.1, dtype=dtype,
                                                  channels_last=channels_last, return_clean=True)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 1000, 0.1)
    assert_matches_reference(images.cpu(), targets.cpu(), clean.cpu(), *ref, dtype)
