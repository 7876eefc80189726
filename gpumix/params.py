"""``MixParams``: the per-batch mixing parameters the fused operator applies."""
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["MixParams"]


def _check_tensor(name: str, value: object, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of dtype {dtype}, got {type(value).__name__}")
    if value.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {value.dtype}")
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")


@dataclass(frozen=True, eq=False)
class MixParams:
    """Mixing parameters for one batch of ``B`` samples, validated on construction.

    Sample ``i`` is mixed with its partner ``j = index[i]``:
    - lam: float32 ``(B,)`` in [0, 1], the weight of sample ``i`` in the image
      (mixup) and in the targets.
    - index: int64 ``(B,)``, a permutation of ``range(B)``.
    - boxes: int32 ``(B, 4)`` half-open ``(y0, x0, y1, x1)`` with
      ``0 <= y0 <= y1`` and ``0 <= x0 <= x1``, or None. A non-empty box means
      CutMix for that sample: pixels inside come from the partner, the rest
      from the sample, and ``lam`` only weights the targets. An empty box
      (``y0 == y1`` or ``x0 == x1``) means mixup with ``lam``.

    All tensors live on one device. Validation reads their values, so building
    MixParams from CUDA tensors synchronizes once; ``Mixup.sample`` builds them
    on the CPU and the operator copies them to the batch's device.
    """

    lam: torch.Tensor
    index: torch.Tensor
    boxes: torch.Tensor | None = None
    # (max y1, max x1) over all boxes, kept so the operator can check boxes
    # against the image size without reading device memory again.
    box_extent: tuple[int, int] = field(init=False, repr=False, compare=False, default=(0, 0))

    def __post_init__(self) -> None:
        if not isinstance(self.lam, torch.Tensor):
            raise TypeError(f"lam must be a torch.Tensor of dtype torch.float32, got {type(self.lam).__name__}")
        if self.lam.dim() != 1 or self.lam.numel() == 0:
            raise ValueError(f"lam must have shape (B,) with B >= 1, got {tuple(self.lam.shape)}")
        n = self.lam.numel()
        _check_tensor("lam", self.lam, torch.float32, (n,))
        _check_tensor("index", self.index, torch.int64, (n,))
        if self.boxes is not None:
            _check_tensor("boxes", self.boxes, torch.int32, (n, 4))
        devices = {t.device for t in (self.lam, self.index, self.boxes) if t is not None}
        if len(devices) > 1:
            raise ValueError(f"lam, index and boxes must be on one device, got {sorted(map(str, devices))}")
        if self.lam.device.type == "meta":
            raise ValueError("lam, index and boxes must hold values, got tensors on the meta device")

        # The checks read the values once, on the CPU, with numpy: a few microseconds for any batch size
        # (torch's per-op overhead on these small tensors was most of a call's host time).
        lam = self.lam.detach().cpu().numpy()
        bad = ~((lam >= 0) & (lam <= 1))  # also catches nan
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"lam must be in [0, 1], got lam[{i}] = {float(lam[i])}")

        index = self.index.detach().cpu().numpy()
        out_of_range = (index < 0) | (index >= n)
        if out_of_range.any():
            i = int(np.flatnonzero(out_of_range)[0])
            raise ValueError(f"index must be a permutation of range({n}), got index[{i}] = {int(index[i])}")
        counts = np.bincount(index, minlength=n)
        if (counts != 1).any():
            v = int(np.flatnonzero(counts != 1)[0])
            raise ValueError(f"index must be a permutation of range({n}), got value {v} {int(counts[v])} times")

        if self.boxes is not None:
            boxes = self.boxes.detach().cpu().numpy()
            y0, x0, y1, x1 = boxes.T
            bad = (y0 < 0) | (x0 < 0) | (y1 < y0) | (x1 < x0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    "boxes must be half-open (y0, x0, y1, x1) with 0 <= y0 <= y1 and 0 <= x0 <= x1, "
                    f"got boxes[{i}] = {boxes[i].tolist()}")
            object.__setattr__(self, "box_extent", (int(y1.max()), int(x1.max())))

    @property
    def batch_size(self) -> int:
        """B, the number of samples."""
        return self.lam.numel()

    @property
    def device(self) -> torch.device:
        """The device of lam, index and boxes."""
        return self.lam.device

    @classmethod
    def identity(cls, batch_size: int) -> "MixParams":
        """Parameters that leave every sample unmixed: lam 1, index ``arange(B)``, no boxes."""
        return cls(torch.ones(batch_size, dtype=torch.float32), torch.arange(batch_size, dtype=torch.int64))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "MixParams":
        """A copy on ``device`` (itself when already there), without revalidating values."""
        device = torch.device(device)
        if device == self.device:
            return self
        moved = object.__new__(MixParams)
        for name in ("lam", "index", "boxes"):
            t = getattr(self, name)
            object.__setattr__(moved, name, None if t is None else t.to(device, non_blocking=non_blocking))
        object.__setattr__(moved, "box_extent", self.box_extent)
        return moved
