"""The GPU branches: their graphs are defined everywhere; they build and run only where CUDA is usable."""
import numpy as np
import pytest
import torch

from gpumix.pipelines import cifar_train, cifar_val, imagenet_train, imagenet_val

BUILDERS = [(imagenet_train, "imagenet"), (imagenet_val, "file_list"), (imagenet_train, "webdataset"),
            (cifar_train, "cifar10-binary"), (cifar_val, "cifar10-python")]


@pytest.mark.parametrize("builder, source", BUILDERS)
def test_gpu_graphs_are_defined_without_a_gpu(datasets, builder, source):
    pipe = builder(datasets[source], batch_size=4, device="gpu", device_id=0)
    assert pipe.device_id == 0


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
