"""bce_loss against a float64 formula written out here and against timm's BinaryCrossEntropy."""
import math

import pytest
import torch

from gpumix.train.losses import LossKind, bce_loss


@pytest.fixture
def case(mixed_batch):
    """Returns ``make(seed)``: logits (7, 6), labels and their mixed, smoothed (0.1) float64 targets."""

    def make(seed, n=7, k=6):
        logits, labels, partner, lam = mixed_batch(seed, n, k, scale=4)
        eps = 0.1
        smooth = torch.full((n, k), eps / k, dtype=torch.float64)
        smooth[torch.arange(n), labels] += 1 - eps
        mixed = lam[:, None] * smooth + (1 - lam[:, None]) * smooth[partner]
        return logits, labels, mixed

    return make


def _bce64(logits, targets, threshold=None, sum_classes=False):
    """-(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))), entry by entry, in float64."""
    if threshold is not None:
        targets = (targets > threshold).double()
    total = torch.zeros(logits.shape[0], dtype=torch.float64)
    for i in range(logits.shape[0]):
        for j in range(logits.shape[1]):
            x, t = float(logits[i, j]), float(targets[i, j])
            p = 1 / (1 + math.exp(-x))
            total[i] += -(t * math.log(p) + (1 - t) * math.log1p(-p))
    per_row = total if sum_classes else total / logits.shape[1]
    return per_row.mean()


def test_loss_kind_has_bce():
    assert LossKind("bce") is LossKind.BCE


@pytest.mark.parametrize("threshold", [None, 0.2, 0.05])
@pytest.mark.parametrize("sum_classes", [False, True])
def test_dense_targets_match_float64(threshold, sum_classes, case):
    logits, _, mixed = case(0)
    got = bce_loss(logits.float(), mixed.float(), target_threshold=threshold, sum_classes=sum_classes)
    assert got.dtype == torch.float32 and got.dim() == 0
    torch.testing.assert_close(got.double(), _bce64(logits.float().double(), mixed.float().double(), threshold,
                                                     sum_classes), rtol=1e-5, atol=1e-6)


def test_threshold_changes_the_loss(case):
    logits, _, mixed = case(3)
    assert not torch.isclose(bce_loss(logits.float(), mixed.float()),
                             bce_loss(logits.float(), mixed.float(), target_threshold=0.2))


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_integer_labels_are_smoothed_as_timm(eps, case):
    logits, labels, _ = case(1)
    k = logits.shape[1]
    dense = torch.full(logits.shape, eps / k, dtype=torch.float64)
    dense[torch.arange(len(labels)), labels] = 1 - eps + eps / k
    got = bce_loss(logits.float(), labels, label_smoothing=eps)
    torch.testing.assert_close(got.double(), _bce64(logits.float().double(), dense), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threshold", [None, 0.2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_timm_binary_cross_entropy(threshold, dtype, case):
    timm_loss = pytest.importorskip("timm.loss")
    logits, labels, mixed = case(2)
    low = logits.to(dtype)
    # timm's train.py with mixup: BinaryCrossEntropy(target_threshold=...) on the mixup's dense targets
    ref = timm_loss.BinaryCrossEntropy(target_threshold=threshold)(low.float(), mixed.float())
    torch.testing.assert_close(bce_loss(low, mixed.float(), target_threshold=threshold), ref, rtol=1e-6, atol=1e-7)
    # without mixup: smoothing while one-hot encoding the labels
    ref = timm_loss.BinaryCrossEntropy(smoothing=0.1, target_threshold=threshold)(low.float(), labels)
    torch.testing.assert_close(bce_loss(low, labels, label_smoothing=0.1, target_threshold=threshold), ref,
                               rtol=1e-6, atol=1e-7)
    ref = timm_loss.BinaryCrossEntropy(target_threshold=threshold, sum_classes=True)(low.float(), mixed.float())
    torch.testing.assert_close(bce_loss(low, mixed.float(), target_threshold=threshold, sum_classes=True), ref,
                               rtol=1e-6, atol=1e-6)


def test_gradient_flows_to_logits(case):
    logits, _, mixed = case(4)
    x = logits.float().requires_grad_()
    bce_loss(x, mixed.float()).backward()
    expected = (torch.sigmoid(logits) - mixed) / mixed.numel()
    torch.testing.assert_close(x.grad.double(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(target_threshold=1.0), ValueError, r"target_threshold must be in \[0.0, 1.0\), got 1.0"),
    (dict(target_threshold=-0.1), ValueError, r"target_threshold must be in \[0.0, 1.0\), got -0.1"),
    (dict(target_threshold="0.2"), TypeError, r"target_threshold must be a float, got '0.2'"),
    (dict(label_smoothing=0.1), ValueError, r"label_smoothing must be 0 with \(B, K\) targets"),
    (dict(sum_classes=1), TypeError, r"sum_classes must be a bool, got 1"),
    (dict(targets=torch.zeros(7, 5)), ValueError, r"targets must be int64 \(7,\) labels or a float tensor shaped"),
    (dict(targets=torch.zeros(7, dtype=torch.int32)), ValueError, r"targets must be a int64 \(7,\) tensor"),
])
def test_bad_arguments_are_refused_by_name(kwargs, error, message, case):
    logits, _, mixed = case(5)
    targets = kwargs.pop("targets", mixed.float())
    with pytest.raises(error, match=message):
        bce_loss(logits.float(), targets, **kwargs)
