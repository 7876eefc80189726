"""MixupIterator over a GPU pipeline with the real CUDA kernel; skipped without CUDA and GPUMIX_TEST_REAL_CUDA=1."""
import os

import pytest
import torch

from gpumix import Mixup, MixupIterator
from gpumix.datasets import STATS
from gpumix.kernels.reference import mix_normalize_reference
from gpumix.pipelines import imagenet_train

MEAN, STD = list(STATS["imagenet"].mean), list(STATS["imagenet"].std)

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or os.environ.get("GPUMIX_TEST_REAL_CUDA") != "1",
    reason="needs CUDA and GPUMIX_TEST_REAL_CUDA=1 (the simulator is on otherwise)")


def test_gpu_iterator_matches_the_reference_and_keeps_its_batches(datasets):
    pipe = imagenet_train(datasets["unique_list"], batch_size=4, crop=24, device="gpu", num_threads=2, seed=1)
    mixup = Mixup(num_classes=15, alpha=0.4, cutmix_alpha=1.0, mode="elem", seed=0)
    loader = MixupIterator(pipe, mixup, mean=MEAN, std=STD, return_clean=True)
    kept = []
    for step, batch in enumerate(loader):
        assert batch.images.device == torch.device("cuda", 0) and batch.targets.device == batch.images.device
        # clean = (x - mean) / std in float32 gives back the exact uint8 batch
        x = batch.clean.double() * torch.tensor(STD, device="cuda", dtype=torch.float64).view(1, 3, 1, 1)
        x = (x + torch.tensor(MEAN, device="cuda", dtype=torch.float64).view(1, 3, 1, 1)).round()
        x = x.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        params = mixup.sample(x.shape[0], (24, 24), epoch=0, step=step)
        images, targets, _ = mix_normalize_reference(x, batch.labels, params.lam, params.index, params.boxes,
                                                     MEAN, STD, 15)
        torch.testing.assert_close(batch.images.double(), images, rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(batch.targets.double(), targets, rtol=0, atol=1e-6)
        kept.append((batch, [t.clone() for t in batch]))
    for batch, copy in kept:  # nothing was overwritten by later steps
        assert all(torch.equal(a, b) for a, b in zip(batch, copy))
