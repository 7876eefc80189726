"""Plain-torch float64 reference for the fused mixup + normalize kernels.

Slow and obvious on purpose: every fast path is tested against it.
"""
from collections.abc import Sequence

import torch

from gpumix.erasing import ErasingParams

__all__ = ["mix_normalize_reference", "noise_reference"]

_MASK = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    # arith.hash32 on int64 tensors holding uint32 values
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def noise_reference(keys: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """float64 ``(B, C, H, W)``: ``arith.gauss_noise(keys[b], (c * H + h) * W + w)`` for every element."""
    position = torch.arange(channels * height * width, dtype=torch.int64, device=keys.device)
    base = (position * 6) & _MASK
    total = torch.zeros((keys.shape[0], position.numel()), dtype=torch.int64, device=keys.device)
    for t in range(6):
        r = _hash32(((base + t) & _MASK)[None, :] ^ keys[:, None])
        total += (r & 0xFFFF) + (r >> 16)
    return ((total - 393210).to(torch.float64) / 65536).view(-1, channels, height, width)


def mix_normalize_reference(batch: torch.Tensor, labels: torch.Tensor, lam: torch.Tensor, index: torch.Tensor,
                            boxes: torch.Tensor | None, mean: Sequence[float], std: Sequence[float], num_classes: int,
                            label_smoothing: float = 0.0,
                            erasing: ErasingParams | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(images, targets, clean)`` in float64, on ``batch``'s device.

    batch: uint8 (B,H,W,C). labels, index: integer (B,). lam: (B,).
    boxes: (B,4) half-open (y0,x0,y1,x1) or None. mean, std: C pixel-unit floats.
    erasing: a ``gpumix.ErasingParams`` or None: each sample's normalized image
    is erased (box color, or the pixel noise; a later box over an earlier one)
    before mixing, and the clean output is the erased, unmixed image.
    images and clean: (B,C,H,W) contiguous; targets: (B,num_classes).
    Nothing is modified in place.
    """
    dev = batch.device
    x = batch.to(torch.float64).permute(0, 3, 1, 2)
    b, channels, height, width = x.shape
    index = index.to(dev, torch.int64)
    lam64 = lam.to(dev, torch.float64)
    mean64 = torch.as_tensor(mean, dtype=torch.float64, device=dev).view(1, -1, 1, 1)
    std64 = torch.as_tensor(std, dtype=torch.float64, device=dev).view(1, -1, 1, 1)
    if erasing is not None:  # normalize, erase, mix in normalized units, and report in them
        x = (x - mean64) / std64
        noise = noise_reference(erasing.keys.to(dev), channels, height, width) if erasing.noise else None
        rows = torch.arange(height, device=dev).view(height, 1)
        cols = torch.arange(width, device=dev).view(1, width)
        x = x.clone()
        for i in range(b):
            for k in range(erasing.boxes.shape[1]):
                ey0, ex0, ey1, ex1 = (int(v) for v in erasing.boxes[i, k])
                inside = (rows >= ey0) & (rows < ey1) & (cols >= ex0) & (cols < ex1)
                fill = noise[i] if noise is not None else erasing.colors[i, k].to(dev, torch.float64).view(-1, 1, 1)
                x[i] = torch.where(inside, fill, x[i])
        mean64, std64 = torch.zeros_like(mean64), torch.ones_like(std64)
    partner = x[index]
    mixed = lam64.view(b, 1, 1, 1) * x + (1 - lam64.view(b, 1, 1, 1)) * partner
    if boxes is not None:
        rows = torch.arange(height, device=dev).view(1, height, 1)
        cols = torch.arange(width, device=dev).view(1, 1, width)
        y0, x0, y1, x1 = (boxes[:, k].to(dev, torch.int64).view(b, 1, 1) for k in range(4))
        has_box = ((y0 < y1) & (x0 < x1)).view(b, 1, 1, 1)
        inside = ((rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)).unsqueeze(1)
        cut = torch.where(inside, partner, x)
        mixed = torch.where(has_box, cut, mixed)
    images = ((mixed - mean64) / std64).contiguous()
    clean = ((x - mean64) / std64).contiguous()
    labels = labels.to(dev, torch.int64)
    smooth = torch.nn.functional.one_hot(labels, num_classes).to(torch.float64)
    smooth = smooth * (1 - label_smoothing) + label_smoothing / num_classes
    targets = lam64.view(b, 1) * smooth + (1 - lam64.view(b, 1)) * smooth[index]
    return images, targets, clean
