"""What users run today to get a mixed, normalized batch: after DALI, and with torch's own loaders.

Each chain takes the same inputs as ``gpumix.mix_normalize`` and returns
``(images, targets)`` with the same meaning, so the benchmark compares like
with like. They are written the way the torch, timm and torchvision docs
show, not tuned against gpumix. The datasets serve the benchmark's samples
as ``(PIL image, label)`` with a settable ``transform``, the way torchvision's
datasets do, for torchvision's ``DataLoader`` and timm's ``create_loader``.
"""
import io
import os
import tarfile

import torch
from PIL import Image

__all__ = ["ArrayImages", "FileListImages", "Repeated", "TarImages", "timm_chain", "torchvision_chain",
           "unfused_chain"]


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


# --- datasets for the torch loaders ---------------------------------------------------------------------
class _Images(torch.utils.data.Dataset):
    """(PIL RGB image, int label) samples with a settable ``transform``, as torchvision datasets have."""

    transform = None

    def __getitem__(self, i):
        image, label = self.load(i)
        return (image if self.transform is None else self.transform(image)), label


class FileListImages(_Images):
    """A DALI file list, read by the pipelines' own reader (``gpumix.file_list``)."""

    def __init__(self, path):
        from gpumix.file_list import read_file_list

        self.samples = list(zip(*read_file_list(path)))

    def __len__(self):
        return len(self.samples)

    def load(self, i):
        path, label = self.samples[i]
        with Image.open(path) as img:
            return img.convert("RGB"), label


class TarImages(_Images):
    """WebDataset shards read by member offset: image (.jpg/.jpeg/.png) plus decimal .cls label per sample."""

    def __init__(self, tars):
        self.samples, self._files = [], {}
        for tar in tars:
            parts = {}
            with tarfile.open(tar) as t:
                for m in t.getmembers():
                    if m.isfile() and "." in os.path.basename(m.name):
                        stem, ext = m.name.rsplit(".", 1)
                        parts.setdefault(stem, {})[ext.lower()] = (m.offset_data, m.size)
            with open(tar, "rb") as f:
                for stem, found in parts.items():
                    image = next((found[e] for e in ("jpg", "jpeg", "png") if e in found), None)
                    if image is None or "cls" not in found:
                        raise ValueError(f"data: sample {stem} in {tar} lacks an image or a .cls label")
                    f.seek(found["cls"][0])
                    self.samples.append((tar, image, int(f.read(found["cls"][1]).decode("ascii"))))

    def __len__(self):
        return len(self.samples)

    def load(self, i):
        tar, (offset, size), label = self.samples[i]
        # one open file per shard and process: forked DataLoader workers must not share a file offset
        key = (os.getpid(), tar)
        f = self._files.get(key)
        if f is None:
            f = self._files[key] = open(tar, "rb")  # noqa: SIM115 (kept open for the process's life)
        f.seek(offset)
        with Image.open(io.BytesIO(f.read(size))) as img:
            return img.convert("RGB"), label

    def __getstate__(self):
        return {**self.__dict__, "_files": {}}


class ArrayImages(_Images):
    """In-memory uint8 (N, H, W, 3) images as PIL images, as torchvision's CIFAR10 class serves them."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def load(self, i):
        return Image.fromarray(self.images[i]), int(self.labels[i])


class Repeated(torch.utils.data.Dataset):
    """``base`` repeated to ``length`` samples; ``transform`` is the base's (timm's create_loader sets it)."""

    def __init__(self, base, length):
        self.base, self.length = base, max(int(length), len(base))

    @property
    def transform(self):
        return self.base.transform

    @transform.setter
    def transform(self, value):
        self.base.transform = value

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        return self.base[i % len(self.base)]
