"""``Mixup``: the validated mixup/CutMix config that draws ``MixParams``.

Sampling is separate from applying: ``Mixup.sample`` draws lam, the partner
index and the CutMix boxes on the CPU with numpy; ``gpumix.mix_normalize``
only applies them. The draws follow timm's ``Mixup`` (batch/pair/elem modes,
``switch_prob``, ``correct_lam``, ``cutmix_minmax``) but accept any batch size.
"""
import enum
import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from gpumix.params import MixParams
from gpumix.validation import check_bool, check_float, check_int

__all__ = ["Mixup", "MixMode"]

# Tags the mixup stream in the seed sequence, so that other consumers of the
# same seed (DALI's shuffling, model init) never draw the same numbers.
_STREAM_TAG = 0x6D6978


class MixMode(str, enum.Enum):
    """How lam is drawn: one per batch, one per mutual pair, or one per sample."""

    BATCH = "batch"
    PAIR = "pair"
    ELEM = "elem"


@dataclass(frozen=True)
class Mixup:
    """Mixup/CutMix settings; ``sample`` draws the parameters of one batch.

    - num_classes: number of classes, >= 2.
    - alpha: mixup draws lam ~ Beta(alpha, alpha); 0 turns mixup off.
    - cutmix_alpha: CutMix draws lam ~ Beta(cutmix_alpha, cutmix_alpha); 0 turns it off.
    - prob: chance that a batch (a pair in pair mode, a sample in elem mode) is mixed at all.
    - switch_prob: chance of CutMix rather than mixup when both are on.
    - mode: "batch" (one lam per batch), "pair" (one per mutual pair) or "elem" (one per sample).
    - label_smoothing: eps in [0, 1) for the targets; the operator applies it.
    - cutmix_minmax: optional (min, max) fractions of the image side for the
      CutMix box, 0 < min < max <= 1; it turns CutMix on and always corrects lam.
    - correct_lam: make lam the exact fraction of pixels kept after the box is clipped.
    - seed: non-negative int; draws depend only on (seed, epoch, step, rank).
    - off_epoch: None (mix in every epoch) or an epoch E >= 0 from which on nothing is
      mixed, as timm's ``--mixup-off-epoch``: ``sample`` then returns the identity
      (lam 1, index arange, no boxes), so the operator yields the clean normalized
      batch and the (smoothed) one-hot targets. It depends on the epoch alone, so a
      resumed run stays exact.
    """

    num_classes: int
    alpha: float = 1.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5
    mode: MixMode = MixMode.BATCH
    label_smoothing: float = 0.0
    cutmix_minmax: tuple[float, float] | None = None
    correct_lam: bool = True
    seed: int = 0
    off_epoch: int | None = None

    def __post_init__(self) -> None:
        check_int("num_classes", self.num_classes, 2)
        check_float("alpha", self.alpha, 0.0, math.inf)
        check_float("cutmix_alpha", self.cutmix_alpha, 0.0, math.inf)
        check_float("prob", self.prob, 0.0, 1.0)
        check_float("switch_prob", self.switch_prob, 0.0, 1.0)
        check_float("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        check_bool("correct_lam", self.correct_lam)
        check_int("seed", self.seed, 0)
        if self.off_epoch is not None:
            check_int("off_epoch", self.off_epoch, 0)
        try:
            mode = MixMode(self.mode)
        except ValueError:
            raise ValueError(f"mode must be one of 'batch', 'pair', 'elem', got {self.mode!r}") from None
        object.__setattr__(self, "mode", mode)
        mm = self.cutmix_minmax
        if mm is not None:
            if (not isinstance(mm, (tuple, list)) or len(mm) != 2
                    or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in mm)
                    or not 0 < mm[0] < mm[1] <= 1):
                raise ValueError(f"cutmix_minmax must be None or (min, max) with 0 < min < max <= 1, got {mm!r}")
            object.__setattr__(self, "cutmix_minmax", (float(mm[0]), float(mm[1])))

    @property
    def mixup_enabled(self) -> bool:
        """Whether mixup (a blend with weight lam) is on: ``alpha > 0``."""
        return self.alpha > 0

    @property
    def cutmix_enabled(self) -> bool:
        """Whether CutMix (a pasted box) is on: ``cutmix_alpha > 0`` or ``cutmix_minmax`` set."""
        return self.cutmix_alpha > 0 or self.cutmix_minmax is not None

    def mixing_on(self, epoch: int) -> bool:
        """Whether batches of ``epoch`` are mixed: False from ``off_epoch`` on."""
        epoch = check_int("epoch", epoch, 0)
        return self.off_epoch is None or epoch < self.off_epoch

    def sample(self, batch_size: int, image_size: tuple[int, int] | list[int], *, epoch: int, step: int,
               rank: int = 0) -> MixParams:
        """Draw the ``MixParams`` of one batch, on the CPU.

        batch_size: B >= 1 (odd sizes work). image_size: (H, W) of the batch,
        for the CutMix boxes. The result depends only on
        ``(seed, epoch, step, rank)``, never on global RNG state, process or
        thread. ``boxes`` is None when CutMix is off, and from ``off_epoch`` on,
        where the result is the identity: lam 1, index ``arange(B)``, no boxes.
        The tensors are float32 lam (B,), int64 index (B,) and int32 boxes (B, 4).
        """
        n = check_int("batch_size", batch_size, 1)
        if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
            raise ValueError(f"image_size must be (H, W), got {image_size!r}")
        height = check_int("image_size[0]", image_size[0], 1)
        width = check_int("image_size[1]", image_size[1], 1)
        key = (_STREAM_TAG, check_int("epoch", epoch, 0), check_int("step", step, 0), check_int("rank", rank, 0))
        if not self.mixing_on(epoch):
            return MixParams(torch.ones(n, dtype=torch.float32), torch.arange(n, dtype=torch.int64), None)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

        perm = rng.permutation(n)
        if self.mode is MixMode.BATCH:
            index, draws, owner = perm, 1, np.zeros(n, dtype=np.int64)
        elif self.mode is MixMode.ELEM:
            index, draws, owner = perm, n, np.arange(n)
        else:  # MixMode.PAIR: perm[2k] and perm[2k+1] swap; an odd one out pairs with itself.
            draws = n // 2
            index = np.arange(n)
            index[perm[0:2 * draws:2]] = perm[1:2 * draws:2]
            index[perm[1:2 * draws:2]] = perm[0:2 * draws:2]
            owner = np.full(n, draws, dtype=np.int64)  # draw `draws` is the unmixed odd one out
            owner[perm[:2 * draws]] = np.repeat(np.arange(draws), 2)

        lam, boxes = self._draw(rng, draws, height, width)
        lam = np.append(lam, 1.0)[owner]
        boxes = np.concatenate([boxes, np.zeros((1, 4), dtype=np.int64)])[owner]
        return MixParams(
            torch.from_numpy(lam.astype(np.float32)),
            torch.from_numpy(index.astype(np.int64)),
            torch.from_numpy(boxes.astype(np.int32)) if self.cutmix_enabled else None,
        )

    def _draw(self, rng: np.random.Generator, count: int, height: int,
              width: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` independent (lam, box) draws; empty boxes where no CutMix happens."""
        lam = np.ones(count)
        boxes = np.zeros((count, 4), dtype=np.int64)
        if count == 0 or not (self.mixup_enabled or self.cutmix_enabled):
            return lam, boxes
        mixed = rng.random(count) < self.prob
        if self.mixup_enabled and self.cutmix_enabled:
            use_cutmix = rng.random(count) < self.switch_prob
        else:
            use_cutmix = np.full(count, self.cutmix_enabled)
        if self.mixup_enabled:
            lam = np.where(mixed & ~use_cutmix, rng.beta(self.alpha, self.alpha, count), lam)
        cut = mixed & use_cutmix
        if cut.any():
            lam_cut, box = self._boxes(rng, int(cut.sum()), height, width)
            boxes[cut] = box
            lam[cut] = lam_cut
        return lam, boxes

    def _boxes(self, rng: np.random.Generator, count: int, height: int,
               width: int) -> tuple[np.ndarray, np.ndarray]:
        """CutMix lam and clipped boxes as in timm's ``rand_bbox``/``rand_bbox_minmax``."""
        if self.cutmix_minmax is not None:
            lo, hi = self.cutmix_minmax
            cut_h = rng.integers(int(height * lo), max(int(height * hi), int(height * lo) + 1), count)
            cut_w = rng.integers(int(width * lo), max(int(width * hi), int(width * lo) + 1), count)
            y0 = rng.integers(0, height - cut_h + 1)
            x0 = rng.integers(0, width - cut_w + 1)
            box = np.stack([y0, x0, y0 + cut_h, x0 + cut_w], axis=1)
            correct = True
            lam = np.ones(count)
        else:
            lam = rng.beta(self.cutmix_alpha, self.cutmix_alpha, count)
            ratio = np.sqrt(1.0 - lam)
            cut_h = (height * ratio).astype(np.int64)
            cut_w = (width * ratio).astype(np.int64)
            cy = rng.integers(0, height, count)
            cx = rng.integers(0, width, count)
            box = np.stack([np.clip(cy - cut_h // 2, 0, height), np.clip(cx - cut_w // 2, 0, width),
                            np.clip(cy + cut_h // 2, 0, height), np.clip(cx + cut_w // 2, 0, width)], axis=1)
            correct = self.correct_lam
        area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
        if correct:
            lam = 1.0 - area / float(height * width)
        # A box clipped to nothing swaps no pixels: the sample stays clean.
        lam = np.where(area == 0, 1.0, lam)
        box[area == 0] = 0
        return lam, box
