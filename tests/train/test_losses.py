"""gpumix.train.losses against direct float64 computations."""
import math

import pytest
import torch
import torch.nn.functional as F

from gpumix.train.losses import LossKind, mixupe_lambda_mean, mixupe_loss, pair_ce, soft_target_ce


@pytest.fixture
def batch(mixed_batch):
    """Returns ``make(seed, n=6, k=5)``: logits scaled by 3, labels, partners and lam (conftest's mixed_batch)."""
    return lambda seed, n=6, k=5: mixed_batch(seed, n, k, scale=3)


def _log_softmax64(logits):
    z = logits - logits.max(dim=1, keepdim=True).values
    return z - torch.log(torch.exp(z).sum(dim=1, keepdim=True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_soft_target_ce_matches_float64(dtype, batch):
    logits, _, _, _ = batch(0)
    targets = torch.rand(logits.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    targets /= targets.sum(dim=1, keepdim=True)
    low = logits.to(dtype)
    ref = -(targets * _log_softmax64(low.double())).sum(dim=1).mean()
    got = soft_target_ce(low, targets.float())
    assert got.dtype == torch.float32 and got.dim() == 0
    torch.testing.assert_close(got.double(), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_pair_ce_matches_float64_loop(eps, batch):
    logits, labels, partner, lam = batch(2)
    k = logits.shape[1]
    logp = _log_softmax64(logits)

    def ce(i, y):  # smoothed cross-entropy of sample i against label y
        return -((1 - eps) * logp[i, y] + eps / k * logp[i].sum())

    terms = [lam[i] * ce(i, labels[i]) + (1 - lam[i]) * ce(i, labels[partner[i]]) for i in range(len(labels))]
    got = pair_ce(logits.float(), labels, partner, lam.float(), label_smoothing=eps)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), torch.stack(terms).mean(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_pair_ce_equals_soft_target_ce_on_mixed_smoothed_targets(eps, batch):
    logits, labels, partner, lam = batch(3, n=8, k=7)
    k = logits.shape[1]

    def smooth(y):
        return (1 - eps) * F.one_hot(y, k).double() + eps / k

    targets = lam[:, None] * smooth(labels) + (1 - lam[:, None]) * smooth(labels[partner])
    pair = pair_ce(logits.float(), labels, partner, lam.float(), label_smoothing=eps)
    soft = soft_target_ce(logits.float(), targets.float())
    torch.testing.assert_close(pair, soft, rtol=1e-6, atol=1e-6)


def test_pair_ce_rejects_bad_inputs(batch):
    logits, labels, partner, lam = batch(4)
    with pytest.raises(ValueError, match=r"labels must be a int64 \(6,\) tensor, got torch.int32 \(6,\)"):
        pair_ce(logits, labels.int(), partner, lam)
    with pytest.raises(ValueError, match=r"partner must be a int64 \(6,\) tensor, got torch.int64 \(5,\)"):
        pair_ce(logits, labels, partner[:5], lam)
    with pytest.raises(ValueError, match=r"lam must be a float \(6,\) tensor, got torch.int64 \(6,\)"):
        pair_ce(logits, labels, partner, partner)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0.0, 1.0\), got 1.0"):
        pair_ce(logits, labels, partner, lam, label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"logits must be a float \(B, K\) tensor, got torch.float64 \(6, 5, 1\)"):
        soft_target_ce(logits[..., None], logits)
    with pytest.raises(ValueError, match=r"targets must be a float tensor shaped like logits \(6, 5\)"):
        soft_target_ce(logits, logits[:, :4])


def test_loss_kind_values():
    assert [k.value for k in LossKind] == ["soft", "pair", "mixupe", "bce"]
    assert LossKind("mixupe") is LossKind.MIXUPE and LossKind.PAIR == "pair"


def _mixupe_setup(seed=5):
    """A float64 linear model, clean and mixed batches; returns (model, x, labels, mix_loss)."""
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(4, 3, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(torch.randn(3, 4, generator=g, dtype=torch.float64))
        model.bias.copy_(torch.randn(3, generator=g, dtype=torch.float64))
    x = torch.randn(6, 4, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, 3, (6,), generator=g)
    return model, x, labels


def _reference(model, x, labels, alpha, eta, tau, mixed_loss):
    """The MixupE loss written out sample by sample from the formula, and the kept mask."""
    f = model(x)
    n, k = f.shape
    terms, kept = [], []
    for i in range(n):
        p = torch.exp(f[i]) / torch.exp(f[i]).sum()
        s = sum(f[i, j] * ((1.0 if j == labels[i] else 0.0) - p[j]) for j in range(k))
        kept.append(bool(s < tau))
        terms.append(s if s < tau else torch.zeros((), dtype=f.dtype))
    lam_mean = (alpha + 1) / (2 * alpha + 1)
    total = mixed_loss - eta * (1 - lam_mean) * torch.stack(terms).sum() / n
    return total * (abs(mixed_loss.item()) / abs(total.item())), kept


def _mixed_loss(model, x, labels):
    partner = torch.tensor([1, 2, 3, 4, 5, 0])
    lam = torch.linspace(0.2, 0.9, 6, dtype=torch.float64)
    mixed = lam[:, None] * x + (1 - lam[:, None]) * x[partner]
    logp = _log_softmax64(model(mixed))
    return -(lam * logp[torch.arange(6), labels] + (1 - lam) * logp[torch.arange(6), labels[partner]]).mean()


def test_mixupe_matches_hand_computation_and_gradient():
    model, x, labels = _mixupe_setup()
    alpha, eta = 0.4, 0.7
    with torch.no_grad():
        f = model(x)
        s = (f * (F.one_hot(labels, 3).double() - torch.softmax(f, 1))).sum(1)
    tau = float(s.sort().values[-2:].mean())  # the sample with the largest s_i is dropped, the rest kept

    got = mixupe_loss(_mixed_loss(model, x, labels), model(x), labels, alpha=alpha, eta=eta, tau=tau,
                      num_classes=3)
    got_grads = torch.autograd.grad(got, [model.weight, model.bias])
    ref, kept = _reference(model, x, labels, alpha, eta, tau, _mixed_loss(model, x, labels))
    ref_grads = torch.autograd.grad(ref, [model.weight, model.bias])
    assert kept.count(False) == 1
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(got_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # the rescaling keeps the mixup loss's magnitude
    torch.testing.assert_close(got.abs(), _mixed_loss(model, x, labels).abs().detach(), rtol=1e-12, atol=0)

    # dropping that sample matters: with tau = inf the gradient is different
    all_kept = mixupe_loss(_mixed_loss(model, x, labels), model(x), labels, alpha=alpha, eta=eta, tau=math.inf,
                           num_classes=3)
    all_grads = torch.autograd.grad(all_kept, [model.weight, model.bias])
    assert not torch.allclose(all_grads[0], got_grads[0], rtol=1e-6, atol=1e-9)


def test_mixupe_gradient_wrt_clean_logits_is_the_analytic_one():
    _, _, labels = _mixupe_setup()
    g = torch.Generator().manual_seed(7)
    f = (torch.randn(6, 3, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    mix = (torch.rand((), generator=g, dtype=torch.float64) + 0.5).requires_grad_(True)
    alpha, eta, tau = 1.0, 0.3, math.inf
    out = mixupe_loss(mix, f, labels, alpha=alpha, eta=eta, tau=tau, num_classes=3)
    out.backward()
    with torch.no_grad():
        p = torch.softmax(f, 1)
        y = F.one_hot(labels, 3).double()
        s = (f * (y - p)).sum(1)
        total = mix - eta * (1 - 2 / 3) * s.sum() / 6
        scale = mix.abs() / total.abs()
        # d s_i / d f_ij = (y_ij - p_ij) - p_ij * (f_ij - sum_k p_ik f_ik)
        ds = (y - p) - p * (f - (p * f).sum(1, keepdim=True))
    torch.testing.assert_close(f.grad, scale * (-eta * (1 - 2 / 3) / 6) * ds, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(mix.grad, scale, rtol=1e-12, atol=0)
    assert mixupe_lambda_mean(1.0) == pytest.approx(2 / 3)


def test_mixupe_zero_loss_stays_finite():
    _, _, labels = _mixupe_setup()
    f = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    mix = torch.zeros((), dtype=torch.float64, requires_grad=True)
    out = mixupe_loss(mix, f, labels, alpha=1.0, eta=0.0, tau=1.0, num_classes=3)
    out.backward()
    assert out.item() == 0 and torch.isfinite(mix.grad) and torch.isfinite(f.grad).all()


def test_mixupe_rejects_bad_settings():
    f = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 1])
    loss = torch.tensor(1.5)
    ok = dict(alpha=1.0, eta=0.1, tau=1.0, num_classes=3)
    with pytest.raises(ValueError, match=r"alpha must be > 0, got 0.0"):
        mixupe_loss(loss, f, labels, **{**ok, "alpha": 0.0})
    with pytest.raises(ValueError, match=r"eta must be >= 0.0, got -0.1"):
        mixupe_loss(loss, f, labels, **{**ok, "eta": -0.1})
    with pytest.raises(ValueError, match=r"tau must be a float \(finite or \+-inf\), got nan"):
        mixupe_loss(loss, f, labels, **{**ok, "tau": math.nan})
    with pytest.raises(ValueError, match=r"clean_logits must have num_classes=4 columns, got \(4, 3\)"):
        mixupe_loss(loss, f, labels, **{**ok, "num_classes": 4})
    with pytest.raises(ValueError, match=r"mix_loss must be a 0-dim float tensor, got torch.float32 \(1,\)"):
        mixupe_loss(loss[None], f, labels, **ok)
    with pytest.raises(ValueError, match=r"clean_labels must be a int64 \(4,\) tensor, got torch.int64 \(3,\)"):
        mixupe_loss(loss, f, labels[:3], **ok)
