"""``mix_normalize``: the fused mixup/CutMix + normalize + layout + cast operator."""
import functools
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

import torch

from gpumix._alloc import empty_output
from gpumix.erasing import ErasingParams
from gpumix.params import MixParams
from gpumix.validation import OUTPUT_DTYPES, check_bool, check_float, check_int, check_label_range, check_output

__all__ = ["mix_normalize", "normalize", "kernel_module", "simulate_cuda", "OUTPUT_DTYPES", "SIMULATE_CUDA_VARIABLE",
           "Statistics"]

# Per-channel mean or std: a sequence of C floats or a tensor of C values.
Statistics = Sequence[float] | torch.Tensor

# With this environment variable at 1, CPU tensors run the CUDA kernel under numba's simulator.
SIMULATE_CUDA_VARIABLE = "GPUMIX_SIMULATE_CUDA"


def mix_normalize(batch: torch.Tensor, labels: torch.Tensor, params: MixParams, *, mean: Statistics, std: Statistics,
                  num_classes: int, label_smoothing: float = 0.0, dtype: torch.dtype = torch.float32,
                  channels_last: bool = False, return_clean: bool = False,
                  erasing: ErasingParams | None = None) -> tuple[torch.Tensor, ...]:
    """Mix, normalize, transpose and cast a uint8 batch in one pass; return ``(images, targets)``.

    Args:
        batch: uint8 ``(B, H, W, C)`` (NHWC, as DALI emits it), C in {1, 3}, a
            dense tensor (any strides) on the CPU or a CUDA device. Never modified.
        labels: integer ``(B,)`` in ``[0, num_classes)``, on the CPU or batch's
            device (CUDA labels are range-checked with one device sync; pass
            CPU labels to avoid it).
        params: ``MixParams`` of ``B`` samples, on the CPU or batch's device.
        mean, std: C floats in pixel units (0-255); std > 0, and such that
            ``(x - mean) / std`` for x in 0-255 fits in ``dtype``.
        num_classes: K >= 2. label_smoothing: eps in [0, 1).
        dtype: torch.float32, torch.float16 or torch.bfloat16.
        channels_last: return torch.channels_last memory format instead of contiguous NCHW.
        return_clean: also return the unmixed normalized batch from the same pass.
        erasing: ``gpumix.ErasingParams`` of ``B`` samples (``RandomErasing.sample``)
            or None: each sample is erased after normalization and before
            mixing (timm's order); the clean batch is erased too, unmixed.

    For sample i and ``j = params.index[i]``: without a box
    ``m = lam[i]*x_i + (1-lam[i])*x_j``; with a non-empty box, pixels inside
    come from ``x_j`` and the rest from ``x_i``. The image is
    ``(m - mean[c]) / std[c]``.

    Returns:
        images: ``dtype``, logical shape ``(B, C, H, W)``, on batch's device.
        targets: float32 ``(B, K)``, ``lam*s(y_i) + (1-lam)*s(y_j)`` with
            ``s = (1-eps)*onehot + eps/K``.
        clean (only with return_clean): like images, without mixing.

    All outputs are freshly allocated; batch, labels, params and erasing are only read.
    """
    n, height, width, channels = _check_batch(batch)
    k = check_int("num_classes", num_classes, 2)
    eps = check_float("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
    mean, std = check_output(channels, mean, std, dtype, channels_last)
    check_bool("return_clean", return_clean)

    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"labels must have an integer dtype, got {labels.dtype}")
    if tuple(labels.shape) != (n,):
        raise ValueError(f"labels must have shape ({n},) to match batch, got {tuple(labels.shape)}")
    if labels.device != batch.device and labels.device.type != "cpu":
        raise ValueError(f"labels are on {labels.device} but batch is on {batch.device}")
    check_label_range(labels, k)

    if not isinstance(params, MixParams):
        raise TypeError(f"params must be a gpumix.MixParams, got {type(params).__name__}")
    if params.batch_size != n:
        raise ValueError(f"params are for {params.batch_size} samples but batch has {n}")
    if params.boxes is not None and (params.box_extent[0] > height or params.box_extent[1] > width):
        raise ValueError(
            f"boxes must lie inside the {height}x{width} image, got a box reaching "
            f"y1 = {params.box_extent[0]}, x1 = {params.box_extent[1]}")

    params_device = params.device
    if params_device != batch.device and params_device.type != "cpu":
        raise ValueError(f"params are on {params_device} but batch is on {batch.device}")
    _check_erasing(erasing, n, height, width, channels)
    return _launch(batch, labels, params, mean, std, k, eps, dtype, channels_last, return_clean, erasing)


def normalize(batch: torch.Tensor, *, mean: Statistics, std: Statistics, dtype: torch.dtype = torch.float32,
              channels_last: bool = False, erasing: ErasingParams | None = None) -> torch.Tensor:
    """Normalize, transpose and cast a uint8 batch in one pass, without mixing: the operator's identity.

    Args and output layout as ``mix_normalize`` (batch uint8 ``(B, H, W, C)``,
    never modified); returns only the images, ``dtype``, logical shape
    ``(B, C, H, W)``, on batch's device: ``(x - mean[c]) / std[c]``. It runs
    the same kernel as ``mix_normalize`` with lam = 1 and no targets, so the
    two differ by exactly the cost of mixing. ``erasing`` (``ErasingParams``
    or None) erases the normalized samples, as in ``mix_normalize``.
    """
    n, height, width, channels = _check_batch(batch)
    mean, std = check_output(channels, mean, std, dtype, channels_last)
    _check_erasing(erasing, n, height, width, channels)
    labels = torch.zeros(n, dtype=torch.int64)
    images, _ = _launch(batch, labels, MixParams.identity(n), mean, std, 0, 0.0, dtype, channels_last, False,
                        erasing)
    return images


def _check_erasing(erasing: object, n: int, height: int, width: int, channels: int) -> None:
    if erasing is None:
        return
    if not isinstance(erasing, ErasingParams):
        raise TypeError(f"erasing must be a gpumix.ErasingParams or None, got {type(erasing).__name__}")
    if erasing.batch_size != n:
        raise ValueError(f"erasing is for {erasing.batch_size} samples but batch has {n}")
    if erasing.colors.shape[2] != channels:
        raise ValueError(f"erasing has colors for {erasing.colors.shape[2]} channels but batch has {channels}")
    y1, x1 = erasing.extent
    if y1 > height or x1 > width:
        raise ValueError(f"erasing boxes must lie inside the {height}x{width} image, got a box reaching "
                         f"y1 = {y1}, x1 = {x1}")


def _check_batch(batch: object) -> tuple[int, int, int, int]:
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"batch must be a torch.Tensor, got {type(batch).__name__}")
    if batch.layout != torch.strided:
        raise TypeError(f"batch must be a dense (strided) tensor, got layout {batch.layout}")
    if batch.device.type not in ("cpu", "cuda"):
        raise ValueError(f"batch must be on the CPU or a CUDA device, got {batch.device}")
    if batch.dtype != torch.uint8:
        raise TypeError(f"batch must have dtype torch.uint8, got {batch.dtype}")
    if batch.dim() != 4:
        raise ValueError(f"batch must be (B, H, W, C), got shape {tuple(batch.shape)}")
    n, height, width, channels = batch.shape
    if channels not in (1, 3):
        raise ValueError(f"batch must have 1 or 3 channels last (NHWC), got shape {tuple(batch.shape)}")
    if n == 0 or height == 0 or width == 0:
        raise ValueError(f"batch must not be empty, got shape {tuple(batch.shape)}")
    return n, height, width, channels


def _launch(batch: torch.Tensor, labels: torch.Tensor, params: MixParams, mean: list[float], std: list[float], k: int,
            eps: float, dtype: torch.dtype, channels_last: bool, return_clean: bool,
            erasing: ErasingParams | None = None) -> tuple[torch.Tensor, ...]:
    """Allocate the outputs and run the CUDA kernel or the CPU twin; arguments already validated."""
    n, height, width, channels = batch.shape
    device = batch.device
    params = params.to(device, non_blocking=True)
    labels = labels.to(device, torch.int64, non_blocking=True)
    boxes = params.boxes if params.boxes is not None else _no_boxes(device, n)
    inv_std = [1.0 / s for s in std]  # the kernels take the statistics as float32 scalars

    images = empty_output((n, channels, height, width), dtype, device, channels_last)
    clean = empty_output((n, channels, height, width), dtype, device, channels_last) if return_clean else None
    targets = torch.empty((n, k), dtype=torch.float32, device=device)

    # fp16/bf16 are written as their bit patterns through an int16 view.
    def raw(t):
        return t if t is None or dtype == torch.float32 else t.view(torch.int16)

    # Imported here, not at module level: importing gpumix must not load numba. The kernel module
    # comes first: GPUMIX_SIMULATE_CUDA must switch on the simulator before numba is imported.
    kernel = kernel_module(batch)
    from gpumix.kernels import arith
    encoding = {torch.float32: arith.ENC_F32, torch.float16: arith.ENC_F16, torch.bfloat16: arith.ENC_BF16}
    erase = None if erasing is None else (erasing.boxes.to(device, non_blocking=True),
                                          erasing.colors.to(device, non_blocking=True),
                                          erasing.keys.to(device, non_blocking=True), erasing.noise)
    kernel.launch(batch.contiguous(), labels, params.lam, params.index, boxes, mean, inv_std, eps,
                  encoding[dtype], raw(images), targets, raw(clean), erase)
    return (images, targets) if clean is None else (images, targets, clean)


@functools.lru_cache(maxsize=32)
def _no_boxes(device: torch.device, n: int) -> torch.Tensor:
    # All-empty boxes (plain mixup), made once per device and batch size: the kernels only read them.
    return torch.zeros((n, 4), dtype=torch.int32, device=device)


def kernel_module(batch: torch.Tensor) -> ModuleType:
    """The kernel module that runs ``batch``: ``gpumix.kernels.mix_normalize_cuda`` for CUDA tensors (or, with
    ``GPUMIX_SIMULATE_CUDA=1``, for CPU tensors under numba's simulator), ``mix_normalize_cpu`` otherwise.

    Both have ``launch(...)`` with the same arguments. Importing one imports numba."""
    cuda = batch.is_cuda or simulate_cuda()
    return importlib.import_module("gpumix.kernels." + ("mix_normalize_cuda" if cuda else "mix_normalize_cpu"))


def simulate_cuda() -> bool:
    """Whether ``GPUMIX_SIMULATE_CUDA=1`` asks CPU tensors to run the CUDA kernel under numba's simulator.

    The switch must be set before numba is imported (gpumix imports it on the
    first operator call): it turns on ``NUMBA_ENABLE_CUDASIM``. A RuntimeError
    says so if numba was already imported without the simulator.
    """
    if os.environ.get(SIMULATE_CUDA_VARIABLE, "0") in ("", "0"):
        return False
    if os.environ[SIMULATE_CUDA_VARIABLE] != "1":
        raise ValueError(f"{SIMULATE_CUDA_VARIABLE} must be 0 or 1, got {os.environ[SIMULATE_CUDA_VARIABLE]!r}")
    if "numba" not in sys.modules:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    from numba import config
    if not config.ENABLE_CUDASIM:  # type: ignore[attr-defined]  # numba sets its config attributes at run time
        raise RuntimeError(f"{SIMULATE_CUDA_VARIABLE}=1 needs numba's simulator, but numba was imported before "
                           "it could be switched on: set NUMBA_ENABLE_CUDASIM=1 too, or set "
                           f"{SIMULATE_CUDA_VARIABLE} before anything imports numba")
    return True
