"""gpumix.mix_normalize end to end on the CPU: against the reference, its invariants, and its errors."""
import pytest
import torch

import gpumix
from gpumix import MixParams, Mixup
from gpumix.kernels.reference import mix_normalize_reference

MEAN, STD = [120.0, 110.0, 100.0], [60.0, 55.0, 50.0]


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_sampled_params_match_reference(assert_matches_reference, mode, dtype):
    g = torch.Generator().manual_seed(len(mode))
    batch = torch.randint(0, 256, (9, 20, 24, 3), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 50, (9,), generator=g)
    mix = Mixup(num_classes=50, alpha=0.4, cutmix_alpha=1.0, mode=mode, label_smoothing=0.1, seed=5)
    params = mix.sample(9, (20, 24), epoch=1, step=2)
    got = gpumix.mix_normalize(batch, labels, params, mean=MEAN, std=STD, num_classes=50, label_smoothing=0.1,
                               dtype=dtype, channels_last=mode == "pair", return_clean=True)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, MEAN, STD, 50, 0.1)
    assert_matches_reference(*got, *ref, dtype)


def test_huge_page_outputs_match_reference(make_case, assert_matches_reference):
    # 8 x 3 x 160 x 160 fp32 is 2.4 MiB: the huge-page allocation path.
    batch, labels, params, mean, std = make_case(8, 160, 160, 3, 10, seed=11)
    got = gpumix.mix_normalize(batch, labels, params, mean=mean, std=std, num_classes=10, channels_last=True)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 10)
    assert_matches_reference(got[0], got[1], None, ref[0], ref[1], None, torch.float32)
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    del got  # the mapping is freed with the tensor


def test_targets_sum_to_one_and_two_classes_per_mixed_row():
    n = 16
    labels = torch.randperm(n)  # unique labels
    batch = torch.randint(0, 256, (n, 8, 8, 3), dtype=torch.uint8)
    params = Mixup(num_classes=n, alpha=1.0, mode="elem", seed=0).sample(n, (8, 8), epoch=0, step=0)
    images, targets = gpumix.mix_normalize(batch, labels, params, mean=MEAN, std=STD, num_classes=n)
    torch.testing.assert_close(targets.sum(1), torch.ones(n), rtol=0, atol=1e-6)
    mixed = (params.lam < 1) & (params.index != torch.arange(n))
    assert mixed.any()
    assert ((targets > 0).sum(1)[mixed] == 2).all()
    assert ((targets > 0).sum(1)[~mixed] == 1).all()


def test_identity_params_only_normalize():
    batch = torch.randint(0, 256, (3, 5, 7, 1), dtype=torch.uint8)
    images, targets = gpumix.mix_normalize(batch, torch.tensor([0, 1, 2]), MixParams.identity(3),
                                           mean=[100.0], std=[50.0], num_classes=3)
    want = (batch.permute(0, 3, 1, 2).double() - 100) / 50
    torch.testing.assert_close(images.double(), want, rtol=1e-6, atol=1e-6)
    assert torch.equal(targets, torch.eye(3))


def test_input_is_not_modified_and_non_contiguous_input_works():
    base = torch.randint(0, 256, (4, 6, 10, 3), dtype=torch.uint8)
    batch = base[:, :, ::2]  # non-contiguous view
    before = base.clone()
    params = Mixup(num_classes=4, alpha=1.0, seed=0).sample(4, (6, 5), epoch=0, step=0)
    images, _ = gpumix.mix_normalize(batch, torch.arange(4), params, mean=MEAN, std=STD, num_classes=4)
    ref = mix_normalize_reference(batch, torch.arange(4), params.lam, params.index, None, MEAN, STD, 4)[0]
    torch.testing.assert_close(images.double(), ref, rtol=1e-6, atol=1e-5)
    assert torch.equal(base, before)


def test_accepts_int32_labels_and_tensor_statistics():
    batch = torch.randint(0, 256, (2, 4, 4, 3), dtype=torch.uint8)
    images, targets = gpumix.mix_normalize(batch, torch.tensor([1, 0], dtype=torch.int32), MixParams.identity(2),
                                           mean=torch.tensor(MEAN), std=torch.tensor(STD), num_classes=2)
    assert torch.equal(targets, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))


# --- errors: one message each ----------------------------------------------------------------

def _call(**overrides):
    args = dict(batch=torch.zeros((2, 4, 4, 3), dtype=torch.uint8), labels=torch.tensor([0, 1]),
                params=MixParams.identity(2), mean=MEAN, std=STD, num_classes=3)
    args.update(overrides)
    return gpumix.mix_normalize(args.pop("batch"), args.pop("labels"), args.pop("params"), **args)


@pytest.mark.parametrize("overrides, error, message", [
    (dict(batch=[[0]]), TypeError, r"batch must be a torch.Tensor, got list"),
    (dict(batch=torch.zeros((2, 4, 4, 3))), TypeError, r"batch must have dtype torch.uint8, got torch.float32"),
    (dict(batch=torch.zeros((2, 4, 4), dtype=torch.uint8)), ValueError,
     r"batch must be \(B, H, W, C\), got shape \(2, 4, 4\)"),
    (dict(batch=torch.zeros((2, 3, 4, 4), dtype=torch.uint8)), ValueError,
     r"batch must have 1 or 3 channels last \(NHWC\), got shape \(2, 3, 4, 4\)"),
    (dict(batch=torch.zeros((2, 0, 4, 3), dtype=torch.uint8)), ValueError,
     r"batch must not be empty, got shape \(2, 0, 4, 3\)"),
    (dict(labels=torch.tensor([0, 3])), ValueError, r"labels must be in \[0, 3\), got labels\[1\] = 3"),
    (dict(labels=torch.tensor([-1, 0])), ValueError, r"labels must be in \[0, 3\), got labels\[0\] = -1"),
    (dict(labels=torch.tensor([0.0, 1.0])), TypeError, r"labels must have an integer dtype, got torch.float32"),
    (dict(labels=torch.tensor([0, 1, 2])), ValueError, r"labels must have shape \(2,\) to match batch, got \(3,\)"),
    (dict(labels=[0, 1]), TypeError, r"labels must be a torch.Tensor, got list"),
    (dict(params=(0.5, 0)), TypeError, r"params must be a gpumix.MixParams, got tuple"),
    (dict(params=MixParams.identity(3)), ValueError, r"params are for 3 samples but batch has 2"),
    (dict(params=MixParams(torch.ones(2), torch.arange(2), torch.tensor([[0, 0, 5, 2]] * 2, dtype=torch.int32))),
     ValueError, r"boxes must lie inside the 4x4 image, got a box reaching y1 = 5, x1 = 2"),
    (dict(mean=[1.0, 2.0]), ValueError, r"mean must have one value per channel \(3\), got 2: \[1.0, 2.0\]"),
    (dict(std=[1.0, 0.0, 1.0]), ValueError, r"std\[1\] must be > 0, got 0.0"),
    (dict(std=[1.0, 1.0, -2.0]), ValueError, r"std\[2\] must be > 0, got -2.0"),
    (dict(mean=[1.0, float("nan"), 1.0]), ValueError, r"mean\[1\] must be finite, got nan"),
    (dict(std=[1.0, float("inf"), 1.0]), ValueError, r"std\[1\] must be finite, got inf"),
    (dict(mean="abc"), TypeError, r"mean must be a sequence of 3 floats, got 'abc'"),
    (dict(num_classes=1), ValueError, r"num_classes must be >= 2, got 1"),
    (dict(label_smoothing=1.0), ValueError, r"label_smoothing must be in \[0.0, 1.0\), got 1.0"),
    (dict(dtype=torch.float64), ValueError,
     r"dtype must be one of torch.float32, torch.float16, torch.bfloat16, got torch.float64"),
    (dict(channels_last="yes"), TypeError, r"channels_last must be a bool, got 'yes'"),
    (dict(return_clean=1), TypeError, r"return_clean must be a bool, got 1"),
])
def test_bad_input(overrides, error, message):
    with pytest.raises(error, match=message):
        _call(**overrides)


def test_params_on_another_device_are_refused():
    meta = MixParams.identity(2)
    object.__setattr__(meta, "lam", meta.lam.to("meta"))  # validation needs values, so fake a placed copy
    object.__setattr__(meta, "index", meta.index.to("meta"))
    with pytest.raises(ValueError, match=r"params are on meta but batch is on cpu"):
        _call(params=meta)


def test_labels_on_another_device_are_refused():
    with pytest.raises(ValueError, match=r"labels are on meta but batch is on cpu"):
        _call(labels=torch.tensor([0, 1], device="meta"))


_SIMULATE_SCRIPT = """
import sys, torch, gpumix
from gpumix import Mixup
from gpumix.kernels.reference import mix_normalize_reference
g = torch.Generator().manual_seed(0)
batch = torch.randint(0, 256, (3, 4, 8, 3), dtype=torch.uint8, generator=g)
labels = torch.tensor([0, 1, 2])
params = Mixup(num_classes=3, alpha=1.0, cutmix_alpha=1.0, mode="elem", seed=1).sample(3, (4, 8), epoch=0, step=0)
images, targets = gpumix.mix_normalize(batch, labels, params, mean=[100.0] * 3, std=[50.0] * 3, num_classes=3)
ref, ref_targets, _ = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes,
                                              [100.0] * 3, [50.0] * 3, 3)
torch.testing.assert_close(images.double(), ref, rtol=1e-6, atol=1e-6)
plain = gpumix.normalize(batch, mean=[100.0] * 3, std=[50.0] * 3)
torch.testing.assert_close(plain.double(), (batch.permute(0, 3, 1, 2).double() - 100) / 50, rtol=1e-6, atol=1e-6)
from numba import config
print(config.ENABLE_CUDASIM, "gpumix.kernels.mix_normalize_cuda" in sys.modules,
      "gpumix.kernels.mix_normalize_cpu" in sys.modules)
"""


def _run_python(script, tmp_path, **env):
    import os
    import subprocess
    import sys
    environ = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM", "GPUMIX_SIMULATE_CUDA")}
    return subprocess.run([sys.executable, "-c", script], env={**environ, **env}, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


def test_simulate_cuda_switch_runs_the_cuda_kernel_on_cpu_tensors(tmp_path):
    run = _run_python(_SIMULATE_SCRIPT, tmp_path, GPUMIX_SIMULATE_CUDA="1")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["1", "True", "False"]  # simulator on, CUDA kernel used, CPU twin never loaded
    run = _run_python(_SIMULATE_SCRIPT, tmp_path, GPUMIX_SIMULATE_CUDA="0")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["0", "False", "True"]


def test_simulate_cuda_switch_refuses_bad_values_and_a_late_switch(tmp_path):
    run = _run_python(_SIMULATE_SCRIPT, tmp_path, GPUMIX_SIMULATE_CUDA="yes")
    assert "GPUMIX_SIMULATE_CUDA must be 0 or 1, got 'yes'" in run.stderr
    run = _run_python("import numba\n" + _SIMULATE_SCRIPT, tmp_path, GPUMIX_SIMULATE_CUDA="1")
    assert "numba was imported before it could be switched on" in run.stderr
