"""The fused kernel against the limit, and the host's share of a call.

- ``kernel_bandwidth``: the kernel alone, launched back to back on
  preallocated tensors, against a copy of the same number of bytes (read plus
  written) in the same process: its fraction of the copy's bandwidth.
- ``host_overhead``: what one ``gpumix.mix_normalize`` call costs the host
  beyond the kernel (sampling, validation, parameter copies, allocation,
  launch preparation), from the same calls with and without that work.

Both run on the CPU (the CPU twin) or a CUDA device (the CUDA kernel).
"""
from __future__ import annotations

import importlib
import statistics
from collections.abc import Callable
from typing import Any

import torch

import gpumix
from gpumix.bench.harness import time_calls
from gpumix.datasets import STATS
from gpumix.ops import OUTPUT_DTYPES

__all__ = ["kernel_bandwidth", "host_overhead"]

# torchvision's ImageNet statistics, in pixel units (only the arithmetic's cost depends on them).
_MEAN, _STD = STATS["imagenet"].mean, STATS["imagenet"].std


def _timer(device: torch.device, fn: Callable[[], Any], repeats: int, warmup: int, per_call: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` (CUDA: events around ``per_call`` back-to-back calls)."""
    return statistics.median(time_calls(device, fn, repeats, warmup, per_call))


def _inputs(device: torch.device, batch_size: int, size: int, num_classes: int,
            seed: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
    gen = torch.Generator().manual_seed(seed)
    batch = torch.randint(0, 256, (batch_size, size, size, 3), dtype=torch.uint8, generator=gen).to(device)
    labels = torch.randint(0, num_classes, (batch_size,), generator=gen)
    mixup = gpumix.Mixup(num_classes=num_classes, alpha=0.2, seed=seed)
    return batch, labels, mixup


def kernel_bandwidth(device: torch.device | str, batch_size: int = 256, size: int = 224,
                     dtype: torch.dtype = torch.float32, channels_last: bool = False, num_classes: int = 1000,
                     repeats: int = 7, warmup: int = 2, seed: int = 0) -> dict[str, Any]:
    """The kernel's bandwidth as a fraction of a same-process copy of the same bytes.

    Bytes moved: both images read (mixup), the ``dtype`` output and the
    float32 targets written. The copy moves a buffer of half that many bytes
    (so it reads and writes the same total). Returns seconds, bytes, GB/s and
    ``fraction_of_copy``.
    """
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"dtype must be one of {OUTPUT_DTYPES}, got {dtype!r}")
    device = torch.device(device)
    batch, labels, mixup = _inputs(device, batch_size, size, num_classes, seed)
    params = mixup.sample(batch_size, (size, size), epoch=0, step=0).to(device)
    labels = labels.to(device)
    boxes = params.boxes if params.boxes is not None else torch.zeros((batch_size, 4), dtype=torch.int32,
                                                                        device=device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty((batch_size, 3, size, size), dtype=dtype, device=device, memory_format=fmt)
    raw = out if dtype == torch.float32 else out.view(torch.int16)
    targets = torch.empty((batch_size, num_classes), device=device)
    from gpumix.kernels import arith
    enc = {torch.float32: arith.ENC_F32, torch.float16: arith.ENC_F16, torch.bfloat16: arith.ENC_BF16}[dtype]
    module = "mix_normalize_cuda" if device.type == "cuda" else "mix_normalize_cpu"
    kernel = importlib.import_module(f"gpumix.kernels.{module}")
    inv_std = [1.0 / s for s in _STD]

    def run() -> None:
        kernel.launch(batch, labels, params.lam, params.index, boxes, _MEAN, inv_std, 0.0, enc, raw, targets)

    nbytes = 2 * batch.numel() + out.numel() * out.element_size() + targets.numel() * 4
    src = torch.ones(nbytes // 2, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    per_call = 10 if device.type == "cuda" else 1
    kernel_s = _timer(device, run, repeats, warmup, per_call)
    copy_s = _timer(device, lambda: dst.copy_(src), repeats, warmup, per_call)
    moved = 2 * src.numel()
    return {"batch_size": batch_size, "size": size, "dtype": str(dtype).replace("torch.", ""),
            "channels_last": channels_last, "bytes": nbytes, "kernel_s": kernel_s, "copy_s": copy_s,
            "kernel_GBps": nbytes / kernel_s / 1e9, "copy_GBps": moved / copy_s / 1e9,
            "fraction_of_copy": (nbytes / kernel_s) / (moved / copy_s)}


def host_overhead(device: torch.device | str, batch_size: int = 256, num_classes: int = 1000, repeats: int = 50,
                  warmup: int = 5, seed: int = 0) -> dict[str, Any]:
    """Microseconds the host spends per ``mix_normalize`` call at ``batch_size``, beyond the kernel.

    On a 4x4 batch, so the kernel is short: ``sample_us`` (``Mixup.sample``),
    ``call_us`` (``mix_normalize``: validation, parameter copies, allocation,
    launch), ``kernel_us`` (the kernel alone on preallocated tensors) and
    ``host_us = sample_us + call_us - kernel_us``. On CUDA the calls are not
    synchronized, so ``call_us`` is the host's time and ``kernel_us`` the
    host's time to launch (the GPU's own time is not the host's).
    """
    device = torch.device(device)
    batch, labels, mixup = _inputs(device, batch_size, 4, num_classes, seed)
    step = [0]

    def sample() -> Any:
        step[0] += 1
        return mixup.sample(batch_size, (4, 4), epoch=0, step=step[0])

    params = sample()

    def call() -> None:
        gpumix.mix_normalize(batch, labels, params, mean=_MEAN, std=_STD, num_classes=num_classes)

    sample_s = _timer(torch.device("cpu"), sample, repeats, warmup)
    call_s = _timer(torch.device("cpu"), call, repeats, warmup)
    if device.type == "cuda":  # the launch's host time: the unsynchronized launches on the host clock
        kernel_s = _host_launch_time(device, batch_size, num_classes, repeats, warmup, seed)
    else:
        kernel_s = kernel_bandwidth(device, batch_size, 4, repeats=repeats, warmup=warmup,
                                    num_classes=num_classes)["kernel_s"]
    return {"batch_size": batch_size, "sample_us": sample_s * 1e6, "call_us": call_s * 1e6,
            "kernel_us": kernel_s * 1e6, "host_us": (sample_s + call_s - kernel_s) * 1e6}


def _host_launch_time(device: torch.device, batch_size: int, num_classes: int, repeats: int, warmup: int,
                      seed: int) -> float:
    batch, labels, mixup = _inputs(device, batch_size, 4, num_classes, seed)
    params = mixup.sample(batch_size, (4, 4), epoch=0, step=0).to(device)
    labels = labels.to(device)
    boxes = torch.zeros((batch_size, 4), dtype=torch.int32, device=device)
    out = torch.empty((batch_size, 3, 4, 4), device=device)
    targets = torch.empty((batch_size, num_classes), device=device)
    from gpumix.kernels import arith, mix_normalize_cuda
    inv_std = [1.0 / s for s in _STD]
    return _timer(torch.device("cpu"), lambda: mix_normalize_cuda.launch(
        batch, labels, params.lam, params.index, boxes, _MEAN, inv_std, 0.0, arith.ENC_F32, out, targets),
        repeats, warmup)
