"""gpumix.train.schedule: Goyal et al.'s warmup + step schedule and the mixup CIFAR schedule."""
import math

import pytest

from gpumix.train.schedule import LRSchedule


def _goyal(steps_per_epoch=1251):
    return LRSchedule(base_lr=0.1, peak_lr=0.4, warmup_epochs=5, milestones=[30, 60, 80], gamma=0.1,
                      steps_per_epoch=steps_per_epoch)


def test_imagenet_goyal_schedule():
    s = _goyal()
    spe = 1251  # ImageNet's 1,281,167 images at batch 1024
    expected = {
        0: 0.1,
        spe: 0.1 + 0.3 * 1 / 5,
        spe * 5 // 2: 0.1 + 0.3 * (spe * 5 // 2) / (5 * spe),
        5 * spe - 1: 0.1 + 0.3 * (5 * spe - 1) / (5 * spe),
        5 * spe: 0.4,
        30 * spe - 1: 0.4,
        30 * spe: 0.04,
        60 * spe: 0.004,
        80 * spe - 1: 0.004,
        80 * spe: 0.0004,
        90 * spe - 1: 0.0004,
    }
    for step, lr in expected.items():
        assert s.lr_at(step) == pytest.approx(lr, rel=1e-12), step
    assert s.milestones == (30, 60, 80)


def test_warmup_is_monotone_per_iteration():
    s = _goyal(steps_per_epoch=7)
    lrs = [s.lr_at(i) for i in range(5 * 7 + 1)]
    assert all(b > a for a, b in zip(lrs, lrs[1:]))
    assert lrs[0] == 0.1 and lrs[-1] == pytest.approx(0.4)


def test_cifar_mixup_schedule():
    s = LRSchedule(base_lr=0.1, peak_lr=0.1, warmup_epochs=0, milestones=(100, 150), steps_per_epoch=391)
    assert s.gamma == 0.1
    for epoch, lr in ((0, 0.1), (99, 0.1), (100, 0.01), (149, 0.01), (150, 0.001), (199, 0.001)):
        assert s.lr_at(epoch * 391) == pytest.approx(lr, rel=1e-12)
        assert s.lr_at(epoch * 391 + 390) == pytest.approx(lr, rel=1e-12)


def test_validation_errors():
    ok = dict(base_lr=0.1, peak_lr=0.4, warmup_epochs=5, milestones=(30, 60), gamma=0.1, steps_per_epoch=10)
    with pytest.raises(ValueError, match=r"base_lr must be > 0, got 0.0"):
        LRSchedule(**{**ok, "base_lr": 0.0})
    with pytest.raises(ValueError, match=r"peak_lr must be >= base_lr \(0.1\), got 0.05"):
        LRSchedule(**{**ok, "peak_lr": 0.05})
    with pytest.raises(ValueError, match=r"base_lr must equal peak_lr when warmup_epochs is 0 .*"
                                         r"got base_lr=0.1, peak_lr=0.4"):
        LRSchedule(**{**ok, "warmup_epochs": 0})
    with pytest.raises(ValueError, match=r"warmup_epochs must be >= 0.0, got -1.0"):
        LRSchedule(**{**ok, "warmup_epochs": -1})
    with pytest.raises(ValueError, match=r"milestones must be strictly increasing, got \[30, 30\]"):
        LRSchedule(**{**ok, "milestones": (30, 30)})
    with pytest.raises(ValueError, match=r"milestones must be epochs >= 0, got -1 in \[-1, 30\]"):
        LRSchedule(**{**ok, "milestones": (-1, 30)})
    with pytest.raises(TypeError, match=r"milestones must be a list or tuple of epochs, got 30"):
        LRSchedule(**{**ok, "milestones": 30})
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\], got 0.0"):
        LRSchedule(**{**ok, "gamma": 0.0})
    with pytest.raises(ValueError, match=r"gamma must be in \[0.0, 1.0\], got 1.5"):
        LRSchedule(**{**ok, "gamma": 1.5})
    with pytest.raises(ValueError, match=r"steps_per_epoch must be >= 1, got 0"):
        LRSchedule(**{**ok, "steps_per_epoch": 0})
    with pytest.raises(ValueError, match=r"step must be >= 0, got -1"):
        LRSchedule(**ok).lr_at(-1)
    with pytest.raises(TypeError, match=r"step must be an int, got 1.5"):
        LRSchedule(**ok).lr_at(1.5)


def test_cosine_schedule_against_its_formula():
    s = LRSchedule(base_lr=1e-4, peak_lr=8e-3, warmup_epochs=5, milestones=(), steps_per_epoch=10, decay="cosine",
                   total_epochs=100, min_lr=1e-6)
    assert s.lr_at(0) == pytest.approx(1e-4)
    assert s.lr_at(25) == pytest.approx(1e-4 + (8e-3 - 1e-4) * 2.5 / 5)
    for step in (50, 51, 300, 525, 999):
        t = (step / 10 - 5) / 95
        assert s.lr_at(step) == pytest.approx(1e-6 + (8e-3 - 1e-6) * 0.5 * (1 + math.cos(math.pi * t)), rel=1e-12)
    assert s.lr_at(50) == pytest.approx(8e-3) and s.lr_at(5000) == pytest.approx(1e-6)
    lrs = [s.lr_at(k) for k in range(50, 1000)]
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))


@pytest.mark.parametrize("kwargs, message", [
    (dict(decay="linear"), r"decay must be one of 'step', 'cosine', got 'linear'"),
    (dict(decay="cosine"), r"total_epochs must be given with decay 'cosine', got None"),
    (dict(decay="cosine", total_epochs=5), r"total_epochs must be > warmup_epochs \(5.0\) with decay 'cosine', "
                                           r"got 5"),
    (dict(min_lr=0.5), r"min_lr must be in \[0.0, 0.4\], got 0.5"),
])
def test_bad_cosine_settings_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LRSchedule(base_lr=0.1, peak_lr=0.4, warmup_epochs=5, milestones=(), steps_per_epoch=10, **kwargs)
