"""gpumix.RandomErasing: timm's distributions, the erased region and its values on real photographs, the operator."""
import math
import random

import numpy as np
import pytest
import torch

import gpumix
from gpumix import ErasingParams, Mixup, RandomErasing
from gpumix.datasets import STATS
from gpumix.kernels.reference import mix_normalize_reference, noise_reference

MEAN, STD = list(STATS["imagenet"].mean), list(STATS["imagenet"].std)


@pytest.fixture(scope="module")
def photos():
    """Six 48x64 crops of the two photographs that ship with scikit-learn (china.jpg, flower.jpg)."""
    from sklearn.datasets import load_sample_images
    crops = [img[y:y + 48, x:x + 64] for img in load_sample_images().images for y, x in ((0, 0), (150, 200),
                                                                                         (300, 500))]
    return torch.from_numpy(np.stack(crops)).contiguous()


def _boxes_of_timm(count, height, width, seed, **kwargs):
    """Boxes timm's RandomErasing draws on ``count`` images, found from where it wrote."""
    from timm.data.random_erasing import RandomErasing as TimmErasing
    random.seed(seed)
    eraser = TimmErasing(device="cpu", **kwargs)
    boxes = []
    for _ in range(count):
        img = torch.ones(1, height, width)
        eraser(img)
        hit = (img[0] == 0).nonzero()
        boxes.append(None if hit.numel() == 0 else (int(hit[:, 0].max() - hit[:, 0].min() + 1),
                                                    int(hit[:, 1].max() - hit[:, 1].min() + 1)))
    return boxes


def test_box_sizes_and_rates_follow_timm():
    n, height, width = 3000, 64, 80
    theirs = _boxes_of_timm(n, height, width, seed=0, probability=0.5, min_area=0.02, max_area=1 / 3,
                            min_aspect=0.3)
    ours = RandomErasing(prob=0.5, area=(0.02, 1 / 3), aspect=(0.3, 1 / 0.3), seed=0).sample(
        n, (height, width), 1, epoch=0, step=0)
    b = ours.boxes[:, 0].numpy().astype(np.float64)
    mine = [(y1 - y0, x1 - x0) for y0, x0, y1, x1 in b if y1 > y0 and x1 > x0]
    theirs = [t for t in theirs if t is not None]
    # erased share: binomial, standard error sqrt(0.25 / 3000) = 0.009
    assert abs(len(mine) / n - len(theirs) / n) < 0.04
    for stat in (lambda hw: hw[0] * hw[1] / (height * width), lambda hw: math.log(hw[0] / hw[1])):
        a, t = np.array([stat(x) for x in mine]), np.array([stat(x) for x in theirs])
        stderr = math.sqrt(a.var() / a.size + t.var() / t.size)
        assert abs(a.mean() - t.mean()) < 4 * stderr, (a.mean(), t.mean())
        assert abs(a.std() - t.std()) < 0.1 * t.std()


def test_counts_and_per_box_area_follow_timm():
    n, height, width = 2000, 64, 64
    ours = RandomErasing(prob=1.0, min_count=1, max_count=3, seed=1).sample(n, (height, width), 1, epoch=0, step=0)
    b = ours.boxes.numpy()
    present = (b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])
    counts = present.sum(1)
    # timm: count uniform in [1, 3]; a box is dropped only after 10 tries that do not fit (rare here)
    assert set(np.unique(counts)) <= {0, 1, 2, 3}
    for c in (1, 2, 3):
        assert abs((counts == c).mean() - 1 / 3) < 0.05
    # each box's area is U(0.02, 1/3) * H * W / count: the mean over boxes of area * count / (H * W)
    area = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) / (height * width)
    scaled = (area * counts[:, None])[present]
    assert abs(scaled.mean() - (0.02 + 1 / 3) / 2) < 0.02


def test_draws_depend_only_on_seed_epoch_step_rank():
    erasing = RandomErasing(prob=0.7, mode="rand", max_count=2, seed=3)

    def draw(**where):
        p = erasing.sample(16, (32, 40), 3, **where)
        return torch.cat([p.boxes.flatten().float(), p.colors.flatten(), p.keys.float()])

    assert torch.equal(draw(epoch=1, step=2, rank=0), draw(epoch=1, step=2, rank=0))
    for other in (dict(epoch=2, step=2, rank=0), dict(epoch=1, step=3, rank=0), dict(epoch=1, step=2, rank=1)):
        assert not torch.equal(draw(epoch=1, step=2, rank=0), draw(**other))


@pytest.mark.parametrize("mode", ["const", "rand", "pixel"])
def test_region_and_values_on_real_photos(photos, mode):
    n = photos.shape[0]
    erasing = RandomErasing(prob=1.0, mode=mode, area=(0.1, 0.3), seed=2).sample(n, (48, 64), 3, epoch=0, step=0)
    out = gpumix.normalize(photos, mean=MEAN, std=STD, erasing=erasing)
    plain = gpumix.normalize(photos, mean=MEAN, std=STD)
    noise = noise_reference(erasing.keys, 3, 48, 64).float()
    for i in range(n):
        y0, x0, y1, x1 = (int(v) for v in erasing.boxes[i, 0])
        assert y1 > y0 and x1 > x0  # prob 1, and these areas always fit
        inside = torch.zeros(48, 64, dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        assert torch.equal(out[i][:, ~inside], plain[i][:, ~inside])  # outside: the normalized photo, untouched
        region = out[i][:, inside]
        if mode == "const":
            assert torch.equal(region, torch.zeros_like(region))
        elif mode == "rand":
            assert torch.equal(region, erasing.colors[i, 0].view(3, 1).expand_as(region))
        else:  # the counter-based noise, bit for bit; roughly N(0, 1)
            assert torch.equal(region, noise[i][:, inside])
    if mode == "pixel":
        values = torch.cat([out[i][:, erasing.boxes[i, 0, 0]:erasing.boxes[i, 0, 2],
                                   erasing.boxes[i, 0, 1]:erasing.boxes[i, 0, 3]].flatten() for i in range(n)])
        assert abs(float(values.mean())) < 0.1 and abs(float(values.std()) - 1) < 0.1


@pytest.mark.parametrize("dtype, channels_last", [(torch.float32, False), (torch.bfloat16, True),
                                                  (torch.float16, False)])
@pytest.mark.parametrize("mode", ["const", "rand", "pixel"])
def test_erased_and_mixed_batch_matches_reference(photos, assert_matches_reference, dtype, channels_last, mode):
    n = photos.shape[0]
    labels = torch.arange(n)
    params = Mixup(num_classes=n, alpha=0.4, cutmix_alpha=1.0, mode="elem", seed=4).sample(n, (48, 64), epoch=0,
                                                                                           step=0)
    erasing = RandomErasing(prob=0.8, mode=mode, max_count=2, seed=4).sample(n, (48, 64), 3, epoch=0, step=0)
    got = gpumix.mix_normalize(photos, labels, params, mean=MEAN, std=STD, num_classes=n, dtype=dtype,
                               channels_last=channels_last, return_clean=True, erasing=erasing)
    ref = mix_normalize_reference(photos, labels, params.lam, params.index, params.boxes, MEAN, STD, n,
                                  erasing=erasing)
    assert_matches_reference(*got, *ref, dtype)


def test_erasing_costs_nothing_when_no_sample_is_erased(photos):
    erasing = RandomErasing(prob=0.0, seed=0).sample(photos.shape[0], (48, 64), 3, epoch=0, step=0)
    assert torch.equal(gpumix.normalize(photos, mean=MEAN, std=STD, erasing=erasing),
                       gpumix.normalize(photos, mean=MEAN, std=STD))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(prob=1.5), ValueError, r"prob must be in \[0.0, 1.0\], got 1.5"),
    (dict(mode="noise"), ValueError, "mode must be one of 'const', 'rand', 'pixel', got 'noise'"),
    (dict(area=(0.5, 0.2)), ValueError, r"area must be \(min, max\) with 0 < min <= max, <= 1, got \(0.5, 0.2\)"),
    (dict(aspect=(0, 2)), ValueError, r"aspect must be \(min, max\) with 0 < min <= max, finite, got \(0, 2\)"),
    (dict(max_count=0), ValueError, "max_count must be >= 1, got 0"),
    (dict(min_count=3, max_count=2), ValueError, "max_count must be >= min_count = 3, got 2"),
    (dict(seed=-1), ValueError, "seed must be >= 0, got -1"),
])
def test_bad_settings_name_the_field(kwargs, error, message):
    with pytest.raises(error, match=message):
        RandomErasing(**kwargs)


def _params(n=2, m=1, channels=3, box=(0, 0, 2, 2)):
    boxes = torch.tensor([box] * n * m, dtype=torch.int32).view(n, m, 4)
    return ErasingParams(boxes, torch.zeros(n, m, channels), torch.zeros(n, dtype=torch.int64))


@pytest.mark.parametrize("erasing, message", [
    ("boxes", "erasing must be a gpumix.ErasingParams or None, got str"),
    (_params(n=3), "erasing is for 3 samples but batch has 2"),
    (_params(channels=1), "erasing has colors for 1 channels but batch has 3"),
    (_params(box=(0, 0, 9, 2)), "erasing boxes must lie inside the 8x8 image, got a box reaching y1 = 9, x1 = 2"),
])
def test_operator_refuses_bad_erasing(erasing, message):
    batch = torch.zeros((2, 8, 8, 3), dtype=torch.uint8)
    error = TypeError if isinstance(erasing, str) else ValueError
    with pytest.raises(error, match=message):
        gpumix.normalize(batch, mean=MEAN, std=STD, erasing=erasing)


@pytest.mark.parametrize("kwargs, message", [
    (dict(boxes=torch.zeros(2, 1, 4)), r"boxes must be an int32 tensor \(B, M, 4\), got torch.float32"),
    (dict(boxes=torch.tensor([[[0, 0, -1, 2]]], dtype=torch.int32).expand(2, 1, 4).contiguous()),
     r"boxes must be half-open .* got boxes\[0, 0\] = \[0, 0, -1, 2\]"),
    (dict(colors=torch.full((2, 1, 3), float("nan"))), "colors must be finite"),
    (dict(keys=torch.tensor([0, 2**32])), r"keys must be in \[0, 2\*\*32\)"),
])
def test_erasing_params_refuse_bad_tensors(kwargs, message):
    fields = dict(boxes=torch.zeros(2, 1, 4, dtype=torch.int32), colors=torch.zeros(2, 1, 3),
                  keys=torch.zeros(2, dtype=torch.int64))
    fields.update(kwargs)
    with pytest.raises((TypeError, ValueError), match=message):
        ErasingParams(**fields)
