"""The fused mixup/CutMix + normalize + layout + cast CUDA kernel and its launch wrapper.

One thread per pixel ``(b, h, w)``: it reads the ``C`` bytes of ``x_i`` and of
the partner ``x_j`` once and writes the ``C`` output values (and the clean
values when asked), so every input and output byte crosses memory once. A
warp spans 32 consecutive ``w``, so stores are coalesced in both NCHW and
channels_last layouts. The first block of each sample also writes its soft
target row.
"""
import math

import numpy as np
import torch
from numba import config as numba_config
from numba import cuda

from gpumix.kernels import arith

__all__ = ["mix_normalize_kernel", "launch"]

# 32 threads along W make each warp's stores one contiguous run; 8 rows give
# 256 threads per block, enough to hide latency on every GPU since Volta.
BLOCK = (32, 8, 1)
# CUDA caps gridDim.z at 65535; larger batches are walked by a grid-stride loop.
MAX_GRID_Z = 65535


@cuda.jit(device=True)
def _store(arr, b, c, h, w, v, enc, nhwc):
    # A device function, not an arith helper: numba's simulator passes only
    # scalars, not its arrays, to njit functions.
    if enc == arith.ENC_F32:
        if nhwc:
            arr[b, h, w, c] = v
        else:
            arr[b, c, h, w] = v
        return
    bits = arith.f32_to_f16_bits(v) if enc == arith.ENC_F16 else arith.f32_to_bf16_bits(v)
    if nhwc:
        arr[b, h, w, c] = bits
    else:
        arr[b, c, h, w] = bits


@cuda.jit(cache=True)
def mix_normalize_kernel(batch, labels, lam, index, boxes, mean, inv_std, eps, enc,
                         out, targets, clean, with_clean, nhwc):
    """batch (B,H,W,C) uint8; out/clean contiguous (B,C,H,W), or (B,H,W,C) if nhwc; targets (B,K) float32."""
    w = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    h = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
    n_batch, height, width, channels = batch.shape
    num_classes = targets.shape[1]
    first_block = cuda.blockIdx.x == 0 and cuda.blockIdx.y == 0
    tid = cuda.threadIdx.y * cuda.blockDim.x + cuda.threadIdx.x
    n_threads = cuda.blockDim.x * cuda.blockDim.y
    for b in range(cuda.blockIdx.z, n_batch, cuda.gridDim.z):
        j = index[b]
        if first_block:
            yi = labels[b]
            yj = labels[j]
            for k in range(tid, num_classes, n_threads):
                targets[b, k] = arith.soft_target(k, yi, yj, lam[b], eps, num_classes)
        if h < height and w < width:
            xs, xe, w_in, w_out = arith.row_weights(lam[b], boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3], h)
            weight = w_in if xs <= w and w < xe else w_out
            for c in range(channels):
                xi = batch[b, h, w, c]
                v = arith.mix_value(xi, batch[j, h, w, c], weight, mean[c], inv_std[c])
                _store(out, b, c, h, w, v, enc, nhwc)
                if with_clean:
                    _store(clean, b, c, h, w, arith.normalize_value(xi, mean[c], inv_std[c]), enc, nhwc)


def launch(batch, labels, lam, index, boxes, mean, inv_std, eps, enc, out, targets, clean=None):
    """Launch the kernel on torch's current stream of ``batch.device``; nothing is synchronized.

    All arguments are torch tensors on one CUDA device (CPU tensors are
    accepted only under ``NUMBA_ENABLE_CUDASIM=1``, for tests):
    batch (B,H,W,C) uint8 contiguous; labels (B,) int64; lam (B,) float32;
    index (B,) int64; boxes (B,4) int32 half-open (y0,x0,y1,x1); mean and
    inv_std (C,) float32; eps float; enc one of ``arith.ENC_*``.
    ``out`` and ``clean`` have logical shape (B,C,H,W), contiguous NCHW or
    channels_last, float32 for ``ENC_F32`` or an int16 view for fp16/bf16;
    targets (B,K) float32.
    Writes ``out``, ``targets`` and ``clean``; reads everything else.
    """
    n_batch, height, width, _ = batch.shape
    grid = (math.ceil(width / BLOCK[0]), math.ceil(height / BLOCK[1]), min(n_batch, MAX_GRID_Z))
    with_clean = clean is not None
    # The kernel gets every output as a contiguous array: channels_last ones as their NHWC permutation.
    nhwc = out.shape[1] > 1 and out.stride(1) == 1
    eps = np.float32(eps)  # keep the target arithmetic in float32, as on the CPU
    tensors = (batch, labels, lam, index, boxes, mean, inv_std)
    def kernel_layout(t):
        return t.permute(0, 2, 3, 1) if nhwc else t

    # Without clean, an empty array of out's type: passing out twice would let
    # the simulator copy the unwritten second copy back over the first.
    outputs = (kernel_layout(out), targets, kernel_layout(clean) if with_clean else out.new_empty((0, 0, 0, 0)))
    if batch.is_cuda:
        with cuda.gpus[batch.device.index]:
            stream = cuda.external_stream(torch.cuda.current_stream(batch.device).cuda_stream)
            # sync=False: we launch on the very stream torch queued these tensors on.
            a = [cuda.as_cuda_array(t, sync=False) for t in tensors]
            o = [cuda.as_cuda_array(t, sync=False) for t in outputs]
            mix_normalize_kernel[grid, BLOCK, stream](*a, eps, enc, *o, with_clean, nhwc)
        return
    if not numba_config.ENABLE_CUDASIM:
        raise RuntimeError("the CUDA kernel needs CUDA tensors (or NUMBA_ENABLE_CUDASIM=1 for tests)")
    a = [t.numpy() for t in tensors]
    o = [t.numpy() for t in outputs]
    mix_normalize_kernel[grid, BLOCK](*a, eps, enc, *o, with_clean, nhwc)
