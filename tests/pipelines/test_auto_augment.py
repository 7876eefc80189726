"""Auto-augment in the DALI train pipelines (CPU): validation, effect, determinism per seed, exact resume."""
import numpy as np
import pytest
import torch

from gpumix.pipelines import AutoAugment, AutoAugmentPolicy, cifar_train, imagenet_train

POLICIES = ["randaugment", "trivialaugment", "autoaugment"]


def _imagenet(datasets, augment, *, seed=3, checkpoint=None):
    return imagenet_train(datasets["file_list"], batch_size=5, crop=24, device="cpu", num_threads=1, seed=seed,
                          checkpoint=checkpoint, auto_augment=augment)


def _cifar(datasets, augment, *, seed=3, checkpoint=None):
    return cifar_train(datasets["cifar10-binary"], batch_size=8, device="cpu", num_threads=1, seed=seed,
                       checkpoint=checkpoint, auto_augment=augment)


def _run(pipe, batches):
    out = []
    for _ in range(batches):
        images, labels = pipe.run()
        out.append((np.stack([np.array(t) for t in images]), np.array(labels.as_tensor()).ravel()))
    return out


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(policy="randaug"), ValueError, r"auto_augment must be None or one of 'randaugment', 'trivialaugment', "
                                         r"'autoaugment', got 'randaug'"),
    (dict(policy="randaugment", num_ops=0), ValueError, r"num_ops must be >= 1, got 0"),
    (dict(policy="randaugment", magnitude=11), ValueError, r"magnitude must be in \[0, magnitude_bins - 1\] = "
                                                           r"\[0, 10\], got 11"),
    (dict(policy="randaugment", magnitude=-1), ValueError, r"magnitude must be >= 0, got -1"),
    (dict(policy="randaugment", magnitude=2.5), TypeError, r"magnitude must be an int, got 2.5"),
    (dict(policy="randaugment", magnitude_bins=1), ValueError, r"magnitude_bins must be >= 2, got 1"),
    (dict(policy="randaugment", increasing=1), TypeError, r"increasing must be a bool, got 1"),
    (dict(policy="randaugment", fill_value=256), ValueError, r"fill_value must be <= 255 \(a uint8\), got 256"),
    (dict(policy="randaugment", max_translate_rel=0.0), ValueError, r"max_translate_rel must be > 0, got 0.0"),
    (dict(policy="randaugment", max_translate_rel=1.5), ValueError, r"max_translate_rel must be in \[0.0, 1.0\]"),
])
def test_bad_config_is_refused_by_name(kwargs, error, message):
    with pytest.raises(error, match=message):
        AutoAugment(**kwargs)


def test_defaults_follow_timm_and_trivialaugment():
    ra = AutoAugment("randaugment")
    assert (ra.policy, ra.num_ops, ra.magnitude, ra.magnitude_bins) == (AutoAugmentPolicy.RANDAUGMENT, 2, 9, 11)
    assert AutoAugment("trivialaugment").magnitude_bins == 31


def test_builders_refuse_a_bad_auto_augment_by_name(datasets):
    with pytest.raises(ValueError, match=r"auto_augment must be None or one of .* got 'rand'"):
        _imagenet(datasets, "rand")
    with pytest.raises(TypeError, match=r"auto_augment must be None, a policy name .* got int"):
        _cifar(datasets, 2)


@pytest.mark.parametrize("policy", POLICIES)
def test_imagenet_policy_changes_images_deterministically_per_seed(datasets, policy):
    pipes = [_imagenet(datasets, policy), _imagenet(datasets, policy), _imagenet(datasets, policy, seed=4)]
    for p in pipes:
        p.build()
    a, b, c = (_run(p, 4) for p in pipes)  # 15 images in batches of 5: more than one epoch
    for (ia, la), (ib, lb) in zip(a, b):
        assert ia.shape == (5, 24, 24, 3) and ia.dtype == np.uint8
        assert np.array_equal(ia, ib) and np.array_equal(la, lb)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_imagenet_randaugment_differs_from_the_plain_pipeline(datasets):
    # magnitude 10 of 10 and 3 ops: every sample gets strong ops; compare per sample, same crops aside
    strong = AutoAugment("randaugment", num_ops=3, magnitude=10)
    plain, aug = _imagenet(datasets, None), _imagenet(datasets, strong)
    plain.build()
    aug.build()
    (xp, _), = _run(plain, 1)
    (xa, _), = _run(aug, 1)
    assert not np.array_equal(xp, xa)


@pytest.mark.parametrize("build", [_imagenet, _cifar], ids=["imagenet", "cifar"])
@pytest.mark.parametrize("policy", POLICIES)
def test_checkpoint_resumes_exactly(datasets, build, policy):
    pipe = build(datasets, policy)
    pipe.build()
    _run(pipe, 2)
    state = pipe.checkpoint()
    expected = _run(pipe, 3)
    resumed = build(datasets, policy, checkpoint=state)
    resumed.build()
    got = _run(resumed, 3)
    for (ie, le), (ig, lg) in zip(expected, got):
        assert np.array_equal(ie, ig) and np.array_equal(le, lg)


@pytest.mark.parametrize("policy", POLICIES)
def test_cifar_policy_keeps_shape_and_changes_pixels(datasets, policy):
    plain, aug = _cifar(datasets, None), _cifar(datasets, AutoAugment(policy, num_ops=3, magnitude=10))
    plain.build()
    aug.build()
    (xp, lp), = _run(plain, 1)
    (xa, la), = _run(aug, 1)
    assert xa.shape == (8, 32, 32, 3) and xa.dtype == np.uint8
    assert np.array_equal(lp, la)  # the same samples: the source does not depend on the augmentation
    assert not np.array_equal(xp, xa)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("policy", POLICIES)
def test_gpu_pipelines_augment_on_the_device_and_resume_exactly(datasets, policy):
    def build(checkpoint=None):
        pipe = imagenet_train(datasets["file_list"], batch_size=5, crop=24, device="gpu", num_threads=1, seed=3,
                              checkpoint=checkpoint, auto_augment=policy)
        pipe.build()
        return pipe

    def run(pipe, n):
        out = []
        for _ in range(n):
            images, labels = pipe.run()
            assert "gpu" in type(images).__name__.lower()  # the augmented batch stays on the device
            out.append(np.stack([np.array(t) for t in images.as_cpu()]))
        return out

    pipe = build()
    run(pipe, 2)
    state = pipe.checkpoint()
    expected = run(pipe, 2)
    for e, g in zip(expected, run(build(state), 2)):
        assert e.shape == (5, 24, 24, 3) and np.array_equal(e, g)
