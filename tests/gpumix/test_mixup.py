"""The Mixup sampler: validation, determinism in (seed, epoch, step, rank), and the draws' invariants."""
import dataclasses
import math
import threading

import numpy as np
import pytest
import torch

from gpumix import MixMode, Mixup

# --- validation: one message per field ---------------------------------------------------------

INVALID_FIELDS = [
    (dict(num_classes=1), ValueError, r"num_classes must be >= 2, got 1"),
    (dict(num_classes=10.0), TypeError, r"num_classes must be an int, got 10.0"),
    (dict(num_classes=True), TypeError, r"num_classes must be an int, got True"),
    (dict(alpha=-0.1), ValueError, r"alpha must be >= 0.0, got -0.1"),
    (dict(alpha=float("nan")), ValueError, r"alpha must be >= 0.0, got nan"),
    (dict(cutmix_alpha=-1), ValueError, r"cutmix_alpha must be >= 0.0, got -1.0"),
    (dict(prob=1.5), ValueError, r"prob must be in \[0.0, 1.0\], got 1.5"),
    (dict(switch_prob=-0.5), ValueError, r"switch_prob must be in \[0.0, 1.0\], got -0.5"),
    (dict(label_smoothing=1.0), ValueError, r"label_smoothing must be in \[0.0, 1.0\), got 1.0"),
    (dict(mode="pairs"), ValueError, r"mode must be one of 'batch', 'pair', 'elem', got 'pairs'"),
    (dict(cutmix_minmax=(0.5, 0.2)), ValueError, r"cutmix_minmax must be None or \(min, max\) .* got \(0.5, 0.2\)"),
    (dict(correct_lam=1), TypeError, r"correct_lam must be a bool, got 1"),
    (dict(seed=-1), ValueError, r"seed must be >= 0, got -1"),
    (dict(alpha="1"), TypeError, r"alpha must be a float, got '1'"),
    (dict(num_classes=None), TypeError, r"num_classes must be an int, got None"),
    (dict(alpha=float("inf")), ValueError, r"alpha must be >= 0.0, got inf"),
    (dict(cutmix_alpha=float("nan")), ValueError, r"cutmix_alpha must be >= 0.0, got nan"),
    (dict(cutmix_alpha=float("inf")), ValueError, r"cutmix_alpha must be >= 0.0, got inf"),
    (dict(cutmix_alpha=True), TypeError, r"cutmix_alpha must be a float, got True"),
    (dict(prob=-0.1), ValueError, r"prob must be in \[0.0, 1.0\], got -0.1"),
    (dict(prob=float("nan")), ValueError, r"prob must be in \[0.0, 1.0\], got nan"),
    (dict(prob="0.5"), TypeError, r"prob must be a float, got '0.5'"),
    (dict(switch_prob=1.01), ValueError, r"switch_prob must be in \[0.0, 1.0\], got 1.01"),
    (dict(switch_prob=float("inf")), ValueError, r"switch_prob must be in \[0.0, 1.0\], got inf"),
    (dict(switch_prob=None), TypeError, r"switch_prob must be a float, got None"),
    (dict(label_smoothing=-0.1), ValueError, r"label_smoothing must be in \[0.0, 1.0\), got -0.1"),
    (dict(label_smoothing=float("nan")), ValueError, r"label_smoothing must be in \[0.0, 1.0\), got nan"),
    (dict(label_smoothing=[0.1]), TypeError, r"label_smoothing must be a float, got \[0.1\]"),
    (dict(mode=None), ValueError, r"mode must be one of 'batch', 'pair', 'elem', got None"),
    (dict(mode=1), ValueError, r"mode must be one of 'batch', 'pair', 'elem', got 1"),
    (dict(mode="BATCH"), ValueError, r"mode must be one of 'batch', 'pair', 'elem', got 'BATCH'"),
    (dict(cutmix_minmax=(0.0, 0.5)), ValueError, r"cutmix_minmax must be None or \(min, max\) .* got \(0.0, 0.5\)"),
    (dict(cutmix_minmax=(0.2, 1.5)), ValueError, r"cutmix_minmax must be None or \(min, max\) .* got \(0.2, 1.5\)"),
    (dict(cutmix_minmax=(0.2, float("nan"))), ValueError, r"cutmix_minmax must be None or \(min, max\) .* "
                                                          r"got \(0.2, nan\)"),
    (dict(cutmix_minmax=(0.2,)), ValueError, r"cutmix_minmax must be None or \(min, max\) .* got \(0.2,\)"),
    (dict(cutmix_minmax=(0.2, 0.4, 0.6)), ValueError, r"cutmix_minmax must be None or \(min, max\) .* "
                                                       r"got \(0.2, 0.4, 0.6\)"),
    (dict(cutmix_minmax=("0.2", "0.5")), ValueError, r"cutmix_minmax must be None or \(min, max\) .* "
                                                      r"got \('0.2', '0.5'\)"),
    (dict(cutmix_minmax=(False, True)), ValueError, r"cutmix_minmax must be None or \(min, max\) .* "
                                                     r"got \(False, True\)"),
    (dict(cutmix_minmax=0.5), ValueError, r"cutmix_minmax must be None or \(min, max\) .* got 0.5"),
    (dict(correct_lam=None), TypeError, r"correct_lam must be a bool, got None"),
    (dict(correct_lam="False"), TypeError, r"correct_lam must be a bool, got 'False'"),
    (dict(seed=1.5), TypeError, r"seed must be an int, got 1.5"),
    (dict(seed=True), TypeError, r"seed must be an int, got True"),
    (dict(seed=None), TypeError, r"seed must be an int, got None"),
    (dict(off_epoch=-1), ValueError, r"off_epoch must be >= 0, got -1"),
    (dict(off_epoch="3"), TypeError, r"off_epoch must be an int, got '3'"),
]


@pytest.mark.parametrize("kwargs, error, message", INVALID_FIELDS)
def test_invalid_fields(kwargs, error, message):
    fields = dict(num_classes=10) | kwargs
    with pytest.raises(error, match=message):
        Mixup(**fields)


def test_every_field_has_invalid_cases():
    fields = {f.name for f in dataclasses.fields(Mixup)}
    assert {name for kwargs, _, _ in INVALID_FIELDS for name in kwargs} == fields


def test_mode_accepts_strings_and_enum():
    assert Mixup(num_classes=3, mode="elem").mode is MixMode.ELEM
    assert Mixup(num_classes=3, mode=MixMode.PAIR).mode is MixMode.PAIR


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((0, (8, 8)), {}, ValueError, r"batch_size must be >= 1, got 0"),
    ((4, 8), {}, ValueError, r"image_size must be \(H, W\), got 8"),
    ((4, (8, 0)), {}, ValueError, r"image_size\[1\] must be >= 1, got 0"),
    ((4, (8, 8)), dict(epoch=-1), ValueError, r"epoch must be >= 0, got -1"),
    ((4, (8, 8)), dict(rank=1.0), TypeError, r"rank must be an int, got 1.0"),
])
def test_invalid_sample_arguments(args, kwargs, error, message):
    position = dict(epoch=0, step=0) | kwargs
    with pytest.raises(error, match=message):
        Mixup(num_classes=10).sample(*args, **position)


# --- determinism ----------------------------------------------------------------------------

def _same(a, b):
    return (torch.equal(a.lam, b.lam) and torch.equal(a.index, b.index)
            and (a.boxes is None and b.boxes is None or torch.equal(a.boxes, b.boxes)))


def test_same_position_same_draw_whatever_the_global_rng():
    mix = Mixup(num_classes=10, alpha=0.4, cutmix_alpha=1.0, mode="elem", seed=7)
    first = mix.sample(9, (16, 20), epoch=2, step=5, rank=1)
    np.random.seed(123)
    torch.manual_seed(123)
    again = mix.sample(9, (16, 20), epoch=2, step=5, rank=1)
    assert _same(first, again)


def test_same_draw_from_threads():
    mix = Mixup(num_classes=10, alpha=0.4, cutmix_alpha=1.0, mode="pair", seed=3)
    want = [mix.sample(8, (12, 12), epoch=0, step=s) for s in range(20)]
    got = [None] * 20

    def work(s):
        got[s] = mix.sample(8, (12, 12), epoch=0, step=s)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(_same(a, b) for a, b in zip(want, got))


def test_same_draw_in_another_process(tmp_path):
    import json
    import subprocess
    import sys
    code = ("import json, gpumix; p = gpumix.Mixup(num_classes=10, alpha=0.4, cutmix_alpha=1.0, mode='elem', "
            "seed=11).sample(7, (9, 9), epoch=3, step=4, rank=2); "
            "print(json.dumps([p.lam.tolist(), p.index.tolist(), p.boxes.tolist()]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    here = Mixup(num_classes=10, alpha=0.4, cutmix_alpha=1.0, mode="elem", seed=11).sample(
        7, (9, 9), epoch=3, step=4, rank=2)
    assert json.loads(out.stdout) == [here.lam.tolist(), here.index.tolist(), here.boxes.tolist()]


def test_positions_seeds_and_ranks_give_different_draws():
    mix = Mixup(num_classes=10, alpha=1.0, mode="elem", seed=0)
    base = mix.sample(64, (8, 8), epoch=0, step=0, rank=0)
    others = [mix.sample(64, (8, 8), epoch=1, step=0, rank=0), mix.sample(64, (8, 8), epoch=0, step=1, rank=0),
              mix.sample(64, (8, 8), epoch=0, step=0, rank=1),
              Mixup(num_classes=10, alpha=1.0, mode="elem", seed=1).sample(64, (8, 8), epoch=0, step=0)]
    for other in others:
        assert not torch.equal(base.lam, other.lam)
        assert not torch.equal(base.index, other.index)


# --- invariants of the draws -------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_index_is_a_permutation_and_boxes_fit(mode, n):
    mix = Mixup(num_classes=10, alpha=0.5, cutmix_alpha=1.0, mode=mode, seed=n)
    for step in range(5):
        p = mix.sample(n, (13, 17), epoch=0, step=step)
        assert torch.equal(torch.sort(p.index).values, torch.arange(n))
        assert p.lam.dtype == torch.float32 and p.boxes.dtype == torch.int32
        assert ((p.lam >= 0) & (p.lam <= 1)).all()
        assert p.box_extent[0] <= 13 and p.box_extent[1] <= 17


@pytest.mark.parametrize("n", [6, 7])
def test_pair_mode_pairs_are_mutual_and_share_lam(n):
    p = Mixup(num_classes=10, alpha=1.0, cutmix_alpha=1.0, mode="pair", seed=2).sample(n, (10, 10), epoch=0, step=0)
    assert torch.equal(p.index[p.index], torch.arange(n))
    assert torch.equal(p.lam[p.index], p.lam) and torch.equal(p.boxes[p.index], p.boxes)
    fixed = (p.index == torch.arange(n)).nonzero().flatten().tolist()
    assert len(fixed) == n % 2  # only the odd one out pairs with itself, and it stays clean
    assert all(p.lam[i] == 1 for i in fixed)


def test_batch_mode_one_lam_per_batch():
    p = Mixup(num_classes=10, alpha=1.0, seed=4).sample(33, (8, 8), epoch=0, step=3)
    assert (p.lam == p.lam[0]).all() and p.lam[0] < 1 and p.boxes is None


def test_elem_mode_one_lam_per_sample():
    p = Mixup(num_classes=10, alpha=1.0, mode="elem", seed=4).sample(33, (8, 8), epoch=0, step=3)
    assert len(set(p.lam.tolist())) == 33


def test_off_switches():
    assert (Mixup(num_classes=5, alpha=0.0).sample(8, (4, 4), epoch=0, step=0).lam == 1).all()
    assert (Mixup(num_classes=5, alpha=1.0, prob=0.0, mode="elem").sample(8, (4, 4), epoch=0, step=0).lam == 1).all()


def test_lam_follows_beta():
    alpha = 0.4
    mix = Mixup(num_classes=5, alpha=alpha, mode="elem", seed=0)
    lam = torch.cat([mix.sample(1000, (4, 4), epoch=0, step=s).lam for s in range(20)]).double()
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)); 20000 draws, so 5 standard errors is loose.
    var = 1 / (4 * (2 * alpha + 1))
    assert abs(lam.mean() - 0.5) < 5 * math.sqrt(var / lam.numel())
    assert abs(lam.var() - var) < 0.01


def test_prob_mixes_that_fraction_of_samples():
    lam = Mixup(num_classes=5, alpha=1.0, prob=0.3, mode="elem", seed=0).sample(
        20000, (4, 4), epoch=0, step=0).lam
    assert abs(float((lam < 1).double().mean()) - 0.3) < 0.02


def test_correct_lam_is_the_exact_kept_fraction():
    p = Mixup(num_classes=5, alpha=0.0, cutmix_alpha=1.0, mode="elem", seed=1).sample(
        256, (31, 45), epoch=0, step=0)
    b = p.boxes.long()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    torch.testing.assert_close(p.lam.double(), 1 - area.double() / (31 * 45), rtol=0, atol=1e-7)
    assert (area > 0).any()
    assert (p.lam[area == 0] == 1).all()  # a box clipped to nothing leaves the sample clean


def test_uncorrected_lam_keeps_the_beta_draw_where_boxes_exist():
    p = Mixup(num_classes=5, alpha=0.0, cutmix_alpha=1.0, mode="elem", correct_lam=False, seed=1).sample(
        256, (31, 45), epoch=0, step=0)
    b = p.boxes.long()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    assert not torch.allclose(p.lam[area > 0].double(), 1 - area[area > 0].double() / (31 * 45))


def test_cutmix_minmax_box_sides():
    p = Mixup(num_classes=5, alpha=0.0, cutmix_minmax=(0.2, 0.5), mode="elem", seed=1).sample(
        200, (100, 50), epoch=0, step=0)
    b = p.boxes.long()
    heights, widths = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    assert heights.min() >= 20 and heights.max() < 50 and widths.min() >= 10 and widths.max() < 25
    torch.testing.assert_close(p.lam.double(), 1 - (heights * widths).double() / 5000, rtol=0, atol=1e-7)


def test_switch_prob_chooses_cutmix_that_often():
    p = Mixup(num_classes=5, alpha=1.0, cutmix_alpha=1.0, switch_prob=0.25, mode="elem", seed=0).sample(
        20000, (64, 64), epoch=0, step=0)
    b = p.boxes.long()
    has_box = ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).double().mean()
    assert 0.2 < float(has_box) < 0.26  # a few CutMix draws clip to nothing
