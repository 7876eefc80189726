"""Plain-torch float64 reference for the fused mixup + normalize kernels.

Slow and obvious on purpose: every fast path is tested against it.
"""
import torch

__all__ = ["mix_normalize_reference"]


def mix_normalize_reference(batch, labels, lam, index, boxes, mean, std, num_classes, label_smoothing=0.0):
    """Return ``(images, targets, clean)`` in float64, on ``batch``'s device.

    batch: uint8 (B,H,W,C). labels, index: integer (B,). lam: (B,).
    boxes: (B,4) half-open (y0,x0,y1,x1) or None. mean, std: C pixel-unit floats.
    images and clean: (B,C,H,W) contiguous; targets: (B,num_classes).
    Nothing is modified in place.
    """
    dev = batch.device
    x = batch.to(torch.float64).permute(0, 3, 1, 2)
    b, _, height, width = x.shape
    index = index.to(dev, torch.int64)
    lam64 = lam.to(dev, torch.float64)
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
    mean64 = torch.as_tensor(mean, dtype=torch.float64, device=dev).view(1, -1, 1, 1)
    std64 = torch.as_tensor(std, dtype=torch.float64, device=dev).view(1, -1, 1, 1)
    images = ((mixed - mean64) / std64).contiguous()
    clean = ((x - mean64) / std64).contiguous()
    labels = labels.to(dev, torch.int64)
    smooth = torch.nn.functional.one_hot(labels, num_classes).to(torch.float64)
    smooth = smooth * (1 - label_smoothing) + label_smoothing / num_classes
    targets = lam64.view(b, 1) * smooth + (1 - lam64.view(b, 1)) * smooth[index]
    return images, targets, clean
