"""Training losses for mixed batches: soft-target cross-entropy, pair cross-entropy, MixupE and BCE.

All losses return a 0-dim tensor. Logits are (B, K) in any float dtype; the
cross-entropies are computed in float32 (float64 stays float64 in
``mixupe_loss``'s regularizer), so bf16/fp16 autocast logits lose nothing.
"""
import enum
import math
import numbers

import torch
import torch.nn.functional as F

from gpumix.validation import check_float, check_int

__all__ = ["LossKind", "soft_target_ce", "pair_ce", "mixupe_loss", "mixupe_lambda_mean", "bce_loss"]


class LossKind(str, enum.Enum):
    """How the trainer turns a mixed batch into a loss."""

    SOFT = "soft"      # soft_target_ce on the fused kernel's (B, K) targets
    PAIR = "pair"      # pair_ce on labels, partner indices and per-sample lambda
    MIXUPE = "mixupe"  # mixupe_loss on top of pair_ce, with a clean forward pass
    BCE = "bce"        # bce_loss on the (B, K) targets: timm's BinaryCrossEntropy (RSB, DeiT III)


def _describe(value):
    return f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def _check_logits(logits):
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        raise ValueError(f"logits must be a float (B, K) tensor, got {_describe(logits)}")


def _check_vector(name, value, n, *, integer):
    kind = "int64" if integer else "float"
    ok = isinstance(value, torch.Tensor) and tuple(value.shape) == (n,) and (
        value.dtype == torch.int64 if integer else value.is_floating_point())
    if not ok:
        raise ValueError(f"{name} must be a {kind} ({n},) tensor, got {_describe(value)}")


def soft_target_ce(logits, targets):
    """Cross-entropy against soft targets: mean_i of -sum_k targets[i, k] * log_softmax(logits[i])[k].

    ``logits``: float (B, K), any float dtype; ``targets``: float (B, K), rows
    summing to 1 (the fused mixup kernel's output). Returns a float32 scalar.
    """
    _check_logits(logits)
    if not isinstance(targets, torch.Tensor) or targets.shape != logits.shape or not targets.is_floating_point():
        raise ValueError(f"targets must be a float tensor shaped like logits {tuple(logits.shape)}, "
                         f"got {_describe(targets)}")
    log_p = F.log_softmax(logits.float(), dim=1)
    return -(targets.float() * log_p).sum(dim=1).mean()


def pair_ce(logits, labels, partner, lam, label_smoothing=0.0):
    """mean_i of lam_i * CE(logits_i, labels_i) + (1 - lam_i) * CE(logits_i, labels[partner_i]).

    ``logits``: float (B, K); ``labels``: int64 (B,); ``partner``: int64 (B,),
    the batch index of each sample's mixing partner; ``lam``: float (B,), the
    weight of the sample's own label. ``label_smoothing`` is
    ``F.cross_entropy``'s. Equal to ``soft_target_ce`` with the mixed smoothed
    one-hot targets, without building them. Returns a float32 scalar.
    """
    _check_logits(logits)
    n = logits.shape[0]
    _check_vector("labels", labels, n, integer=True)
    _check_vector("partner", partner, n, integer=True)
    _check_vector("lam", lam, n, integer=False)
    eps = check_float("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
    logits = logits.float()
    own = F.cross_entropy(logits, labels, reduction="none", label_smoothing=eps)
    other = F.cross_entropy(logits, labels[partner], reduction="none", label_smoothing=eps)
    lam = lam.float()
    return (lam * own + (1.0 - lam) * other).mean()


def mixupe_lambda_mean(alpha):
    """E[lam'] = (alpha + 1) / (2 alpha + 1): the mean of Beta(alpha + 1, alpha) (MixupE's lambda')."""
    alpha = check_float("alpha", alpha, 0.0, math.inf)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    return (alpha + 1.0) / (2.0 * alpha + 1.0)


def mixupe_loss(mix_loss, clean_logits, clean_labels, *, alpha, eta, tau, num_classes):
    """MixupE (Zou et al., UAI 2023): the mixup loss plus an implicit-regularization term.

    The official code's ``--mixupe_version 3`` (the version its README runs):
    ``s_i = f_i . (y_i - softmax(f_i))`` with ``f_i`` the logits of the clean
    (unmixed) sample and ``y_i`` its one-hot label; samples with ``s_i >= tau``
    are dropped; ``L = mix_loss - eta * (1 - E[lam']) * sum_kept(s_i) / B``;
    the result is ``L * |mix_loss| / |L|`` with the ratio detached, so the loss
    keeps the mixup loss's magnitude. Gradients flow through ``clean_logits``
    (both the logits and the softmax) and ``mix_loss``.

    ``mix_loss``: 0-dim float tensor; ``clean_logits``: float (B, num_classes);
    ``clean_labels``: int64 (B,); ``alpha`` > 0 (mixup's Beta parameter),
    ``eta`` >= 0, ``tau`` a float (``math.inf`` keeps every sample).
    Returns a 0-dim tensor in the wider of float32 and the inputs' dtypes.
    """
    lam_mean = mixupe_lambda_mean(alpha)
    eta = check_float("eta", eta, 0.0, math.inf)
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or math.isnan(tau):
        raise ValueError(f"tau must be a float (finite or +-inf), got {tau!r}")
    num_classes = check_int("num_classes", num_classes, 1)
    if not isinstance(mix_loss, torch.Tensor) or mix_loss.dim() != 0 or not mix_loss.is_floating_point():
        raise ValueError(f"mix_loss must be a 0-dim float tensor, got {_describe(mix_loss)}")
    _check_logits(clean_logits)
    n = clean_logits.shape[0]
    if clean_logits.shape[1] != num_classes:
        raise ValueError(f"clean_logits must have num_classes={num_classes} columns, got {tuple(clean_logits.shape)}")
    _check_vector("clean_labels", clean_labels, n, integer=True)
    f = clean_logits.to(torch.promote_types(clean_logits.dtype, torch.float32))
    y = F.one_hot(clean_labels, num_classes).to(f.dtype)
    s = (f * (y - torch.softmax(f, dim=1))).sum(dim=1)
    kept = s.detach() < float(tau)
    reg = torch.where(kept, s, torch.zeros_like(s)).sum() / n
    total = mix_loss - eta * (1.0 - lam_mean) * reg
    size = total.detach().abs()
    # |L| == 0 only when both terms vanish; keep the (zero) loss finite rather than 0/0.
    scale = torch.where(size > 0, mix_loss.detach().abs() / size.clamp_min(torch.finfo(size.dtype).tiny),
                        torch.ones_like(size))
    return total * scale


def bce_loss(logits: torch.Tensor, targets: torch.Tensor, *, label_smoothing: float = 0.0,
             target_threshold: float | None = None, sum_classes: bool = False) -> torch.Tensor:
    """Binary cross-entropy of every class against the (mixed) targets, as timm's ``BinaryCrossEntropy``.

    ``logits``: float (B, K), any float dtype, computed in float32.
    ``targets``: either the float (B, K) mixed targets (the fused operator's,
    already smoothed: ``label_smoothing`` must then be 0, as timm assumes
    dense targets are softened upstream) or int64 (B,) labels, which become
    ``eps/K`` off and ``1 - eps + eps/K`` on with ``eps = label_smoothing``.
    ``target_threshold`` (timm's ``--bce-target-thresh``): targets become
    1 where ``> target_threshold`` and 0 elsewhere. The loss is
    ``binary_cross_entropy_with_logits`` averaged over B*K entries, or summed
    over classes and averaged over the batch with ``sum_classes`` (timm's
    ``--bce-sum``). Nothing is modified in place. Returns a float32 scalar.
    """
    _check_logits(logits)
    n, k = logits.shape
    eps = check_float("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
    if target_threshold is not None:
        target_threshold = check_float("target_threshold", target_threshold, 0.0, 1.0, high_open=True)
    if not isinstance(sum_classes, bool):
        raise TypeError(f"sum_classes must be a bool, got {sum_classes!r}")
    logits = logits.float()
    if isinstance(targets, torch.Tensor) and targets.dim() == 1:
        _check_vector("targets", targets, n, integer=True)
        dense = torch.full((n, k), eps / k, device=logits.device, dtype=logits.dtype)
        dense.scatter_(1, targets.view(-1, 1), 1.0 - eps + eps / k)
    else:
        if not isinstance(targets, torch.Tensor) or targets.shape != logits.shape or not targets.is_floating_point():
            raise ValueError(f"targets must be int64 ({n},) labels or a float tensor shaped like logits "
                             f"{tuple(logits.shape)}, got {_describe(targets)}")
        if eps:
            raise ValueError(f"label_smoothing must be 0 with (B, K) targets (they are smoothed upstream, by the "
                             f"mixup operator), got {eps!r}")
        dense = targets.float()
    if target_threshold is not None:
        dense = (dense > target_threshold).to(dense.dtype)
    if sum_classes:
        return F.binary_cross_entropy_with_logits(logits, dense, reduction="none").sum(dim=1).mean()
    return F.binary_cross_entropy_with_logits(logits, dense)
