"""The learning-rate schedule: per-iteration linear warmup, then step decay at epoch milestones.

Goyal et al. (2017) for large batches: the rate rises linearly, every
iteration, from ``base_lr`` to ``peak_lr`` over ``warmup_epochs``, then is
multiplied by ``gamma`` at each milestone epoch. ``lr_at`` is a pure function
of the global step, so a checkpoint needs to keep only the step.
"""
import bisect
import dataclasses
import math
import numbers

from gpumix.validation import check_float, check_int, tagged

__all__ = ["LRSchedule", "DECAYS"]

# After the warmup: step decay at milestones (Goyal et al.), or a cosine to min_lr at total_epochs (timm's
# --sched cosine, per iteration rather than per epoch).
DECAYS = ("step", "cosine")


def _check_milestones(milestones):
    if isinstance(milestones, (str, bytes)) or not isinstance(milestones, (list, tuple)):
        raise tagged(TypeError(f"milestones must be a list or tuple of epochs, got {milestones!r}"), "milestones")
    for m in milestones:
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not math.isfinite(m) or m < 0:
            raise tagged(ValueError(f"milestones must be epochs >= 0, got {m!r} in {list(milestones)}"), "milestones")
    if any(b <= a for a, b in zip(milestones, milestones[1:])):
        raise tagged(ValueError(f"milestones must be strictly increasing, got {list(milestones)}"), "milestones")
    return tuple(milestones)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LRSchedule:
    """Linear warmup ``base_lr`` -> ``peak_lr`` over ``warmup_epochs``, then ``peak_lr * gamma**k``.

    ``k`` is the number of ``milestones`` (epochs, strictly increasing) already
    reached. Epochs are fractional: ``epoch = step / steps_per_epoch``. With
    ``warmup_epochs == 0`` there is no warmup and ``base_lr`` must equal
    ``peak_lr``. With ``decay="cosine"`` the milestones are unused and, after
    the warmup, the rate follows ``min_lr + (peak_lr - min_lr) * (1 + cos(pi * t)) / 2``
    with ``t = (epoch - warmup_epochs) / (total_epochs - warmup_epochs)``
    (clamped to 1), every iteration. All fields are keyword-only.
    """

    base_lr: float
    peak_lr: float
    warmup_epochs: float
    milestones: tuple
    steps_per_epoch: int
    gamma: float = 0.1
    decay: str = "step"
    total_epochs: float | None = None
    min_lr: float = 0.0

    def __post_init__(self):
        base = check_float("base_lr", self.base_lr, 0.0, math.inf)
        if base <= 0:
            raise tagged(ValueError(f"base_lr must be > 0, got {self.base_lr!r}"), "base_lr")
        peak = check_float("peak_lr", self.peak_lr, 0.0, math.inf)
        if peak < base:
            raise tagged(ValueError(f"peak_lr must be >= base_lr ({base!r}), got {self.peak_lr!r}"), "peak_lr")
        warmup = check_float("warmup_epochs", self.warmup_epochs, 0.0, math.inf)
        if warmup == 0 and peak != base:
            raise tagged(ValueError(f"base_lr must equal peak_lr when warmup_epochs is 0 (nothing ramps between them), "
                                    f"got base_lr={base!r}, peak_lr={peak!r}"), "base_lr")
        gamma = check_float("gamma", self.gamma, 0.0, 1.0)
        if gamma <= 0:
            raise tagged(ValueError(f"gamma must be in (0, 1], got {self.gamma!r}"), "gamma")
        values = {"base_lr": base, "peak_lr": peak, "warmup_epochs": warmup, "gamma": gamma,
                  "milestones": _check_milestones(self.milestones),
                  "steps_per_epoch": check_int("steps_per_epoch", self.steps_per_epoch, 1)}
        if self.decay not in DECAYS:
            raise tagged(ValueError(f"decay must be one of {', '.join(map(repr, DECAYS))}, got {self.decay!r}"),
                         "decay")
        values["min_lr"] = check_float("min_lr", self.min_lr, 0.0, peak)
        if self.decay == "cosine":
            if self.total_epochs is None:
                raise tagged(ValueError("total_epochs must be given with decay 'cosine', got None"), "total_epochs")
            total = check_float("total_epochs", self.total_epochs, 0.0, math.inf)
            if total <= warmup:
                raise tagged(ValueError(f"total_epochs must be > warmup_epochs ({warmup!r}) with decay 'cosine', "
                                        f"got {self.total_epochs!r}"), "total_epochs")
            values["total_epochs"] = total
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def lr_at(self, step):
        """The learning rate (float) for global optimizer step ``step`` (int >= 0, counted from 0)."""
        step = check_int("step", step, 0)
        epoch = step / self.steps_per_epoch
        if epoch < self.warmup_epochs:
            return self.base_lr + (self.peak_lr - self.base_lr) * epoch / self.warmup_epochs
        if self.decay == "cosine":
            t = min(1.0, (epoch - self.warmup_epochs) / (self.total_epochs - self.warmup_epochs))
            return self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
        return self.peak_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)
