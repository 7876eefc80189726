"""The GPU branches: their graphs are defined everywhere; they build and run only where CUDA is usable."""
import warnings

import numpy as np
import pytest
import torch

from gpumix import device
from gpumix.pipelines import cifar_train, cifar_val, imagenet_train, imagenet_val

BUILDERS = [(imagenet_train, "imagenet"), (imagenet_val, "file_list"), (imagenet_train, "webdataset"),
            (cifar_train, "cifar10-binary"), (cifar_val, "cifar10-python")]


@pytest.mark.parametrize("builder, source", BUILDERS)
def test_gpu_graphs_are_defined_without_a_gpu(datasets, monkeypatch, builder, source):
    # Pretend the GPU path can run, so the GPU branch of each graph is defined (not built) on any machine.
    monkeypatch.setattr(device, "gpu_problem", lambda: None)
    pipe = builder(datasets[source], batch_size=4, device="gpu", device_id=0)
    assert pipe.device_id == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
@pytest.mark.parametrize("builder, source", BUILDERS[:1])
def test_explicit_gpu_without_one_fails_saying_what_is_missing(datasets, builder, source):
    with pytest.raises(device.GPUUnavailableError, match="device='gpu' cannot run on this machine: torch .* "):
        builder(datasets[source], batch_size=4, device="gpu")


def test_auto_falls_back_to_the_cpu_saying_why_once(monkeypatch):
    monkeypatch.setattr(device, "gpu_problem", lambda: "no GPU in this test")
    monkeypatch.setattr(device, "_said", set())
    with pytest.warns(RuntimeWarning, match="device='auto' runs on the CPU: no GPU in this test"):
        assert device.resolve_device("auto") == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert device.resolve_device("auto") == "cpu"  # said once
    with pytest.raises(ValueError, match="device must be 'auto', 'gpu' or 'cpu', got 'tpu'"):
        device.resolve_device("tpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("builder, source", BUILDERS)
def test_gpu_pipelines_run(datasets, builder, source):
    size = 32 if source.startswith("cifar") else 24
    kwargs = {} if source.startswith("cifar") else {"crop": 24}
    pipe = builder(datasets[source], batch_size=4, device="gpu", **kwargs)
    pipe.build()
    images, labels = pipe.run()
    first = np.array(images.as_cpu()[0])
    assert first.shape == (size, size, 3) and first.dtype == np.uint8
