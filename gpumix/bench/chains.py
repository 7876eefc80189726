"""The competitors' mixing chains after a uint8 batch: timm's ``Mixup`` and torchvision's ``v2.MixUp``.

Each takes the same inputs as ``gpumix.mix_normalize`` and returns
``(images, targets)`` with the same meaning, so the benchmark compares like
with like. They are written the way the timm and torchvision docs show, not
tuned against gpumix. The unfused plain-torch chain is the kernel's
reference, ``gpumix.kernels.reference.unfused_chain``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from gpumix.kernels.reference import to_output, torch_normalize

__all__ = ["timm_chain", "torchvision_chain"]


def timm_chain(mixup_fn: Callable[..., Any], batch: torch.Tensor, labels: torch.Tensor, *, mean: Sequence[float],
               std: Sequence[float], dtype: torch.dtype = torch.float32,
               channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Cast and normalize, then ``timm.data.Mixup`` (in place, batch/pair/elem), then cast."""
    x = torch_normalize(batch, mean, std).contiguous()
    x, targets = mixup_fn(x, labels)
    return to_output(x, dtype, channels_last), targets


def torchvision_chain(mixup_fn: Callable[..., Any], batch: torch.Tensor, labels: torch.Tensor, *,
                      mean: Sequence[float], std: Sequence[float], dtype: torch.dtype = torch.float32,
                      channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Cast and normalize, then ``torchvision.transforms.v2.MixUp``, then cast."""
    x = torch_normalize(batch, mean, std)
    x, targets = mixup_fn(x, labels)
    return to_output(x, dtype, channels_last), targets
