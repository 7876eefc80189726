"""The CPU twin of the fused kernel, and its launch wrapper.

A single ``numba.njit(parallel=True)`` pass: threads split the ``B*H`` image
rows, and each row reads ``x_i`` and its partner ``x_j`` once and writes every
output value once. The per-element arithmetic is ``gpumix.kernels.arith``,
the same functions the CUDA kernel calls.
"""
import numba
import numpy as np

from gpumix.kernels import arith

__all__ = ["mix_normalize_cpu", "launch"]


@numba.njit(cache=True)
def _write_row(dst, b, h, row, enc, nhwc):
    # row holds image row h of sample b in NHWC order, as float32.
    if nhwc:
        arith.encode_row(dst[b, h].reshape(row.size), row, enc)
    else:
        channels = dst.shape[1]
        for c in range(channels):
            arith.encode_row(dst[b, c, h], row[c::channels], enc)


@numba.njit(parallel=True, cache=True)
def mix_normalize_cpu(batch, labels, lam, index, boxes, mean, inv_std, eps, enc,
                      out, targets, clean, with_clean, nhwc):
    """batch (B,H,W,C) uint8; out/clean (B,C,H,W), or (B,H,W,C) if nhwc; targets (B,K) float32; all contiguous.

    Each image row is first mixed in its interleaved NHWC order into a float32
    scratch row (contiguous, so it vectorizes), then encoded into the output
    row (NHWC) or scattered to the C output planes (NCHW) while the scratch
    row is still in L1.
    """
    n_batch, height, width, channels = batch.shape
    num_classes = targets.shape[1]
    span = width * channels
    pixels = batch.reshape(n_batch, height, span)
    mean_k = np.empty(span, np.float32)
    inv_std_k = np.empty(span, np.float32)
    for k in range(span):
        mean_k[k] = mean[k % channels]
        inv_std_k[k] = inv_std[k % channels]
    for row in numba.prange(n_batch * height):
        b = row // height
        h = row - b * height
        xs, xe, w_in, w_out = arith.row_weights(lam[b], boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3], h)
        ks = xs * channels
        ke = xe * channels
        src_i = pixels[b, h]
        src_j = pixels[index[b], h]
        scratch = np.empty(span, np.float32)
        for k in range(span):
            weight = w_in if ks <= k and k < ke else w_out
            scratch[k] = arith.mix_value(src_i[k], src_j[k], weight, mean_k[k], inv_std_k[k])
        _write_row(out, b, h, scratch, enc, nhwc)
        if with_clean:
            for k in range(span):
                scratch[k] = arith.normalize_value(src_i[k], mean_k[k], inv_std_k[k])
            _write_row(clean, b, h, scratch, enc, nhwc)
    for b in numba.prange(n_batch):
        yi = labels[b]
        yj = labels[index[b]]
        for k in range(num_classes):
            targets[b, k] = arith.soft_target(k, yi, yj, lam[b], eps, num_classes)


def launch(batch, labels, lam, index, boxes, mean, inv_std, eps, enc, out, targets, clean=None):
    """Run the CPU twin on CPU torch tensors; same contract as ``mix_normalize_cuda.launch``.

    batch (B,H,W,C) uint8 contiguous; labels (B,) int64; lam (B,) float32;
    index (B,) int64; boxes (B,4) int32; mean and inv_std C floats (a sequence or a CPU tensor).
    ``out``/``clean`` have logical shape (B,C,H,W), contiguous NCHW or
    channels_last, float32 or an int16 view for fp16/bf16; targets (B,K)
    float32. Writes only the outputs.
    """
    with_clean = clean is not None
    # The kernel gets every output as a contiguous array: channels_last ones as their NHWC permutation.
    nhwc = out.shape[1] > 1 and out.stride(1) == 1

    def kernel_layout(t):
        return (t.permute(0, 2, 3, 1) if nhwc else t).numpy()

    arrays = [t.numpy() for t in (batch, labels, lam, index, boxes)]
    arrays += [np.asarray(mean, dtype=np.float32), np.asarray(inv_std, dtype=np.float32)]
    outputs = [kernel_layout(out), targets.numpy(), kernel_layout(clean if with_clean else out)]
    mix_normalize_cpu(*arrays, np.float32(eps), enc, *outputs, with_clean, nhwc)
