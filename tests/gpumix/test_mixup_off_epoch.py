"""Mixup(off_epoch=E): mixing stops from epoch E on (timm's --mixup-off-epoch), by the epoch alone."""
import pytest
import torch

import gpumix
from gpumix import Mixup, MixupIterator
from gpumix.datasets import STATS
from gpumix.kernels.reference import mix_normalize_reference
from gpumix.pipelines import imagenet_train

MEAN, STD = list(STATS["imagenet"].mean), list(STATS["imagenet"].std)
N = 15  # the conftest's unique-label file list: label i is sample i


@pytest.mark.parametrize("value, error, message", [
    (-1, ValueError, r"off_epoch must be >= 0, got -1"),
    (2.0, TypeError, r"off_epoch must be an int, got 2.0"),
    (True, TypeError, r"off_epoch must be an int, got True"),
])
def test_bad_off_epoch_is_refused_by_name(value, error, message):
    with pytest.raises(error, match=message):
        Mixup(num_classes=10, off_epoch=value)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_draws_before_off_epoch_are_unchanged_and_identity_after(mode):
    on = Mixup(num_classes=10, alpha=0.8, cutmix_alpha=1.0, mode=mode, seed=4)
    off = Mixup(num_classes=10, alpha=0.8, cutmix_alpha=1.0, mode=mode, seed=4, off_epoch=2)
    for epoch in range(4):
        for step in range(3):
            for rank in range(2):
                a = on.sample(7, (20, 24), epoch=epoch, step=step, rank=rank)
                b = off.sample(7, (20, 24), epoch=epoch, step=step, rank=rank)
                if epoch < 2:
                    assert off.mixing_on(epoch)
                    assert torch.equal(a.lam, b.lam) and torch.equal(a.index, b.index)
                    assert torch.equal(a.boxes, b.boxes)
                else:
                    assert not off.mixing_on(epoch)
                    assert torch.equal(b.lam, torch.ones(7)) and torch.equal(b.index, torch.arange(7))
                    assert b.boxes is None
    # the mixed epochs really mix: otherwise the comparison above proves nothing
    assert not torch.equal(on.sample(7, (20, 24), epoch=0, step=0).lam, torch.ones(7))


def test_off_epoch_zero_never_mixes():
    mix = Mixup(num_classes=10, alpha=1.0, off_epoch=0)
    assert not mix.mixing_on(0)
    assert torch.equal(mix.sample(5, (8, 8), epoch=0, step=0).index, torch.arange(5))


def test_iterator_yields_clean_images_and_smoothed_one_hot_from_off_epoch(datasets):
    eps = 0.1
    mixup = Mixup(num_classes=N, alpha=1.0, cutmix_alpha=1.0, mode="elem", label_smoothing=eps, seed=3, off_epoch=1)
    pipe = imagenet_train(datasets["unique_list"], batch_size=4, crop=16, device="cpu", num_threads=1, seed=5)
    loader = MixupIterator(pipe, mixup, mean=MEAN, std=STD, return_clean=True)
    mixed_rows = 0
    for epoch in range(3):
        for batch in loader:
            n = batch.images.shape[0]
            if epoch == 0:
                mixed_rows += int((batch.lam < 1).sum())
                continue
            assert torch.equal(batch.lam, torch.ones(n)) and torch.equal(batch.index, torch.arange(n))
            assert torch.equal(batch.images, batch.clean)
            smooth = torch.full((n, N), eps / N)
            smooth[torch.arange(n), batch.labels.long()] += 1 - eps
            torch.testing.assert_close(batch.targets, smooth, rtol=0, atol=1e-6)
    assert mixed_rows > 0


def test_clean_batch_matches_the_float64_reference():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (6, 9, 11, 3), dtype=torch.uint8)
    labels = torch.randint(0, 10, (6,))
    mix = Mixup(num_classes=10, alpha=1.0, cutmix_alpha=1.0, label_smoothing=0.2, off_epoch=3)
    params = mix.sample(6, (9, 11), epoch=5, step=0)
    out, targets = gpumix.mix_normalize(images, labels, params, mean=MEAN, std=STD, num_classes=10,
                                        label_smoothing=0.2)
    ref_images, ref_targets, ref_clean = mix_normalize_reference(images, labels, params.lam, params.index, None,
                                                                 MEAN, STD, 10, label_smoothing=0.2)
    torch.testing.assert_close(ref_images, ref_clean, rtol=0, atol=0)
    torch.testing.assert_close(out.double(), ref_clean, rtol=0, atol=2e-6)
    one_hot = torch.full((6, 10), 0.02, dtype=torch.float64)
    one_hot[torch.arange(6), labels] += 0.8
    torch.testing.assert_close(targets.double(), one_hot, rtol=0, atol=1e-6)
    torch.testing.assert_close(ref_targets, one_hot, rtol=0, atol=1e-12)
