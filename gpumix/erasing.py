"""``RandomErasing``: timm's random erasing, drawn on the CPU and applied inside the fused pass.

Sampling is separate from applying, as for ``Mixup``: ``RandomErasing.sample``
draws each sample's boxes (and, in 'rand' mode, their colors) with numpy from
``(seed, epoch, step, rank)``; ``gpumix.mix_normalize(..., erasing=...)``
applies them in the same pass that normalizes and mixes. Semantics are timm's
``timm.data.RandomErasing`` applied to the normalized batch before mixing:

- with probability ``prob`` a sample gets ``count`` boxes, ``count`` uniform in
  ``[min_count, max_count]``; each box tries up to 10 times a target area
  ``U(area) * H * W / count`` and an aspect ratio ``exp(U(log aspect))``, with
  ``h = round(sqrt(area * aspect))``, ``w = round(sqrt(area / aspect))``, and
  is kept at the first try with ``h < H`` and ``w < W``, at a uniform position;
- pixels inside a box take, in normalized units, 0 ('const'), one N(0, 1)
  value per channel and box ('rand'), or one N(0, 1) value per pixel and
  channel ('pixel').

The 'pixel' noise is not drawn here: the kernels read it from a fixed table
of N(0, 1) quantiles (``gpumix.kernels.noise``), each image row a run of
consecutive values from a start hashed from the sample's key and the row
(``gpumix.kernels.arith.noise_row``), so the CPU twin and the CUDA kernel
produce the same bits.
"""
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from gpumix.validation import check_float, check_int

__all__ = ["RandomErasing", "ErasingParams", "ERASING_MODES", "ATTEMPTS"]

ERASING_MODES = ("const", "rand", "pixel")
# Tags the erasing stream in the seed sequence (Mixup uses its own tag), so the two never draw the same numbers.
_STREAM_TAG = 0x657261
# Tries at a box that fits before giving up on it (timm's RandomErasing).
ATTEMPTS = 10


@dataclass(frozen=True, eq=False)
class ErasingParams:
    """Erasing boxes of one batch of B samples, at most M per sample, as the operator applies them.

    - boxes: int32 ``(B, M, 4)`` half-open ``(y0, x0, y1, x1)``; an empty box erases nothing.
    - colors: float32 ``(B, M, C)`` normalized values of each box ('const': zeros, 'rand': N(0, 1)).
    - noise: True for 'pixel' mode: inside a box each element takes
      its pixel noise (``gpumix.kernels.noise``) instead of its box color.
    - keys: uint32 ``(B,)`` as int64, the per-sample keys of the pixel noise.
    All on the CPU; the operator copies them to the batch's device.
    """

    boxes: torch.Tensor
    colors: torch.Tensor
    keys: torch.Tensor
    noise: bool = False
    _extent: tuple[int, int] = field(init=False, repr=False, default=(0, 0))  # set by __post_init__: extent

    def __post_init__(self) -> None:
        if not isinstance(self.boxes, torch.Tensor) or self.boxes.dtype != torch.int32 or self.boxes.dim() != 3 \
                or self.boxes.shape[2] != 4:
            raise TypeError(f"boxes must be an int32 tensor (B, M, 4), got {_describe(self.boxes)}")
        n, m = self.boxes.shape[:2]
        if not isinstance(self.colors, torch.Tensor) or self.colors.dtype != torch.float32 \
                or self.colors.dim() != 3 or tuple(self.colors.shape[:2]) != (n, m):
            raise TypeError(f"colors must be a float32 tensor ({n}, {m}, C), got {_describe(self.colors)}")
        if not isinstance(self.keys, torch.Tensor) or self.keys.dtype != torch.int64 or tuple(self.keys.shape) != (n,):
            raise TypeError(f"keys must be an int64 tensor ({n},), got {_describe(self.keys)}")
        if not isinstance(self.noise, bool):
            raise TypeError(f"noise must be a bool, got {self.noise!r}")
        b = self.boxes.cpu()
        bad = (b[..., 0] < 0) | (b[..., 1] < 0) | (b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1])
        if bad.any():
            i, k = (int(x) for x in bad.nonzero()[0])
            raise ValueError(f"boxes must be half-open (y0, x0, y1, x1) with 0 <= y0 <= y1 and 0 <= x0 <= x1, "
                             f"got boxes[{i}, {k}] = {b[i, k].tolist()}")
        if not torch.isfinite(self.colors).all():
            raise ValueError("colors must be finite")
        if ((self.keys < 0) | (self.keys >= 2**32)).any():
            raise ValueError("keys must be in [0, 2**32)")
        # the operator checks it on every call: computed once (the tensors are not to be modified)
        extent = (int(b[..., 2].max()), int(b[..., 3].max())) if b.numel() else (0, 0)
        object.__setattr__(self, "_extent", extent)

    @property
    def batch_size(self) -> int:
        """B, the number of samples."""
        return self.boxes.shape[0]

    @property
    def extent(self) -> tuple[int, int]:
        """(max y1, max x1) over every box: the image must be at least this large."""
        return self._extent


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {tuple(value.shape)}"
    return type(value).__name__


@dataclass(frozen=True)
class RandomErasing:
    """Random erasing settings (timm's ``RandomErasing``); ``sample`` draws the boxes of one batch.

    - prob: chance that a sample is erased at all (timm's ``probability``).
    - mode: 'const' (0), 'rand' (N(0, 1) per channel and box) or 'pixel' (N(0, 1) per element).
    - area: (min, max) fraction of the image each sample's boxes cover together, 0 < min <= max <= 1.
    - aspect: (min, max) aspect ratio h / w, 0 < min <= max; timm's default max is 1 / min.
    - min_count, max_count: boxes per erased sample, uniform in [min_count, max_count].
    - seed: non-negative int; draws depend only on (seed, epoch, step, rank).
    """

    prob: float = 0.25
    mode: str = "const"
    area: tuple[float, float] = (0.02, 1 / 3)
    aspect: tuple[float, float] = (0.3, 1 / 0.3)
    min_count: int = 1
    max_count: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        check_float("prob", self.prob, 0.0, 1.0)
        if self.mode not in ERASING_MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, ERASING_MODES))}, got {self.mode!r}")
        for name, low, high in (("area", 0.0, 1.0), ("aspect", 0.0, math.inf)):
            pair = getattr(self, name)
            if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
                    or not low < pair[0] <= pair[1] <= high):
                bound = "<= 1" if high == 1.0 else "finite"
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max, {bound}, got {pair!r}")
            object.__setattr__(self, name, (float(pair[0]), float(pair[1])))
        check_int("min_count", self.min_count, 1)
        check_int("max_count", self.max_count, 1)
        if self.max_count < self.min_count:
            raise ValueError(f"max_count must be >= min_count = {self.min_count}, got {self.max_count}")
        check_int("seed", self.seed, 0)

    def sample(self, batch_size: int, image_size: tuple[int, int] | list[int], channels: int = 3, *, epoch: int,
               step: int, rank: int = 0) -> ErasingParams:
        """Draw the ``ErasingParams`` of one batch, on the CPU, from ``(seed, epoch, step, rank)`` alone.

        image_size: (H, W); channels: C of the batch (1 or 3), for the colors. Returns int32 boxes
        (B, M, 4), float32 colors (B, M, C) and int64 keys (B,) with M = ``max_count``.
        """
        n = check_int("batch_size", batch_size, 1)
        if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
            raise ValueError(f"image_size must be (H, W), got {image_size!r}")
        height = check_int("image_size[0]", image_size[0], 1)
        width = check_int("image_size[1]", image_size[1], 1)
        channels = check_int("channels", channels, 1)
        key = (_STREAM_TAG, check_int("epoch", epoch, 0), check_int("step", step, 0), check_int("rank", rank, 0))
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))
        m = self.max_count

        erased = rng.random(n) < self.prob
        count = rng.integers(self.min_count, m + 1, n)
        # every try of every box at once: (B, M, ATTEMPTS)
        target = rng.uniform(self.area[0], self.area[1], (n, m, ATTEMPTS)) * height * width / count[:, None, None]
        log_aspect = (math.log(self.aspect[0]), math.log(self.aspect[1]))
        ratio = np.exp(rng.uniform(log_aspect[0], log_aspect[1], (n, m, ATTEMPTS)))
        h = np.rint(np.sqrt(target * ratio)).astype(np.int64)  # timm: int(round(...)), half to even too
        w = np.rint(np.sqrt(target / ratio)).astype(np.int64)
        fits = (h < height) & (w < width)
        first = fits.argmax(axis=2)  # the first try that fits (0 when none does: masked out below)
        h = np.take_along_axis(h, first[..., None], 2)[..., 0]
        w = np.take_along_axis(w, first[..., None], 2)[..., 0]
        used = erased[:, None] & (np.arange(m)[None, :] < count[:, None]) & fits.any(axis=2)
        top = np.floor(rng.random((n, m)) * (height - h + 1)).astype(np.int64)
        left = np.floor(rng.random((n, m)) * (width - w + 1)).astype(np.int64)
        boxes = np.stack([top, left, top + h, left + w], axis=2) * used[..., None]
        if self.mode == "rand":
            colors = rng.standard_normal((n, m, channels)).astype(np.float32) * used[..., None]
        else:
            colors = np.zeros((n, m, channels), dtype=np.float32)
        keys = rng.integers(0, 2**32, n, dtype=np.int64)
        return ErasingParams(torch.from_numpy(boxes.astype(np.int32)), torch.from_numpy(colors),
                             torch.from_numpy(keys), noise=self.mode == "pixel")
