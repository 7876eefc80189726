"""gpumix.device: what the GPU path needs, said in words."""
import pytest
import torch

from gpumix import device


def test_no_visible_gpu_is_named(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "sees no usable GPU" in device.gpu_problem.__wrapped__()


def test_cpu_only_torch_is_named(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "is a CPU-only build" in device.gpu_problem.__wrapped__()


def test_a_driver_older_than_dali_is_named(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device, "dali_cuda_major", lambda: 13)
    monkeypatch.setattr(device, "driver_cuda_major", lambda: 12)
    assert device.gpu_problem.__wrapped__() == ("the installed DALI is built for CUDA 13, but the NVIDIA driver "
                                                "supports CUDA 12 at most: install gpumix[cuda12] or a newer driver")
    monkeypatch.setattr(device, "driver_cuda_major", lambda: 13)
    assert device.gpu_problem.__wrapped__() is None


def test_explicit_gpu_raises_and_cpu_never_asks(monkeypatch):
    monkeypatch.setattr(device, "gpu_problem", lambda: "no GPU in this test")
    with pytest.raises(device.GPUUnavailableError, match="device='gpu' cannot run on this machine: no GPU in this"):
        device.resolve_device("gpu")
    monkeypatch.setattr(device, "gpu_problem", lambda: pytest.fail("'cpu' must not probe the GPU"))
    assert device.resolve_device("cpu") == "cpu"


def test_installed_dali_build_is_found():
    assert device.dali_cuda_major() in (12, 13)
