"""Plain-torch float64 reference for the fused mixup + normalize kernels, and the unfused chain users write.

``mix_normalize_reference`` is slow and obvious on purpose: every fast path
is tested against it. ``unfused_chain`` is the same operation the way a
training loop writes it by hand after DALI (cast, normalize, gather, lerp,
paste, cast), in the output dtype: what the demo and the benchmarks time
the kernel against.
"""
from collections.abc import Sequence

import torch

from gpumix.erasing import ErasingParams
from gpumix.kernels import noise

__all__ = ["mix_normalize_reference", "noise_reference", "to_output", "torch_normalize", "unfused_chain"]

_MASK = 0xFFFFFFFF


def noise_reference(keys: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """float64 ``(B, C, H, W)``: the 'pixel' noise of every element, ``table[noise_index(keys[b], h, w * C + c)]``.

    ``table`` is ``gpumix.kernels.noise.table()``; the index is computed here
    with torch integer ops (``arith.noise_row``'s hash), not by the kernels' code.
    """
    size = noise.NOISE_SIZE
    row = torch.arange(height, dtype=torch.int64, device=keys.device)
    start = noise.hash32(keys[:, None] ^ ((row * 0x9E3779B9) & _MASK)[None, :]) % size  # (B, H)
    k = torch.arange(width * channels, device=keys.device)  # w * C + c
    index = (start[..., None] + k) % size  # (B, H, W * C): channels_last order
    table = torch.from_numpy(noise.table().astype("float64")).to(keys.device)
    return table[index].view(-1, height, width, channels).permute(0, 3, 1, 2).contiguous()


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


# --- the unfused chain users write by hand ------------------------------------------------------------
def torch_normalize(batch, mean, std):
    """uint8 (B,H,W,C) to float32 (B,C,H,W) normalized: cast, move to NCHW, normalize, as DALI-to-torch loops do."""
    x = batch.permute(0, 3, 1, 2).to(torch.float32)
    mean_t = torch.tensor(mean, device=batch.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=batch.device).view(1, -1, 1, 1)
    return (x - mean_t) / std_t


def to_output(x, dtype, channels_last):
    """``x`` cast to ``dtype`` and made contiguous, channels_last or NCHW."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.to(dtype).contiguous(memory_format=fmt)


def unfused_chain(batch, labels, params, *, mean, std, num_classes, label_smoothing=0.0,
                  dtype=torch.float32, channels_last=False):
    """``(images, targets)`` as ``gpumix.mix_normalize`` returns them, by separate torch ops.

    Cast, normalize, gather the partner, lerp (or paste the box), cast and
    make contiguous. ``params``: a ``gpumix.MixParams`` (lam, index, boxes).
    """
    x = torch_normalize(batch, mean, std)
    lam = params.lam.to(x.device)
    index = params.index.to(x.device)
    partner = x[index]
    mixed = torch.lerp(partner, x, lam.view(-1, 1, 1, 1))
    if params.boxes is not None:
        for i, (y0, x0, y1, x1) in enumerate(params.boxes.tolist()):
            if y0 < y1 and x0 < x1:
                mixed[i] = x[i]
                mixed[i, :, y0:y1, x0:x1] = partner[i, :, y0:y1, x0:x1]
    off = label_smoothing / num_classes
    y = torch.nn.functional.one_hot(labels.to(x.device), num_classes).to(torch.float32)
    y = y * (1 - label_smoothing) + off
    targets = torch.lerp(y[index], y, lam.view(-1, 1))
    return to_output(mixed, dtype, channels_last), targets
