"""What users run today to get a mixed, normalized batch from DALI's uint8 NHWC output.

Each chain takes the same inputs as ``gpumix.mix_normalize`` and returns
``(images, targets)`` with the same meaning, so the benchmark compares like
with like. They are written the way the torch, timm and torchvision docs
show, not tuned against gpumix.
"""
import torch

__all__ = ["unfused_chain", "timm_chain", "torchvision_chain"]


def _normalize(batch, mean, std):
    # cast to float, move to NCHW, normalize: what every DALI-to-torch loop writes by hand
    x = batch.permute(0, 3, 1, 2).to(torch.float32)
    mean_t = torch.tensor(mean, device=batch.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=batch.device).view(1, -1, 1, 1)
    return (x - mean_t) / std_t


def _finish(x, dtype, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.to(dtype).contiguous(memory_format=fmt)


def unfused_chain(batch, labels, params, *, mean, std, num_classes, label_smoothing=0.0,
                  dtype=torch.float32, channels_last=False):
    """Cast, normalize, gather the partner, lerp (or paste the box), cast and make contiguous."""
    x = _normalize(batch, mean, std)
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
    return _finish(mixed, dtype, channels_last), targets


def timm_chain(mixup_fn, batch, labels, *, mean, std, dtype=torch.float32, channels_last=False):
    """Cast and normalize, then ``timm.data.Mixup`` (in place, batch/pair/elem), then cast."""
    x = _normalize(batch, mean, std).contiguous()
    x, targets = mixup_fn(x, labels)
    return _finish(x, dtype, channels_last), targets


def torchvision_chain(mixup_fn, batch, labels, *, mean, std, dtype=torch.float32, channels_last=False):
    """Cast and normalize, then ``torchvision.transforms.v2.MixUp``, then cast."""
    x = _normalize(batch, mean, std)
    x, targets = mixup_fn(x, labels)
    return _finish(x, dtype, channels_last), targets
