"""The CPU twin of the fused kernel, and its launch wrapper.

A single ``numba.njit(parallel=True)`` pass: threads split the ``B*H`` image
rows in chunks, and each row reads ``x_i`` and its partner ``x_j`` once and
writes every output value once (with random erasing, a row that a box
crosses then has its erased pieces written again, ``_erase_row``). The loops are specialized so that each one
vectorizes: float32 NCHW with 3 channels reads the interleaved pixels and
writes the three planes in one loop, float32 channels_last and 1 channel walk
the row's values contiguously, both straight into the output. fp16/bf16 rows
are mixed into an L1-resident float32 scratch row the same way, then rounded
in one contiguous pass (the rounding vectorizes there, not in the mixing
loop). The per-element arithmetic is ``gpumix.kernels.arith``, the same
functions the CUDA kernel calls.
"""
import numba
import numpy as np

from gpumix.kernels import arith

__all__ = ["mix_normalize_cpu", "launch"]

_F32 = arith.ENC_F32
_F16 = arith.ENC_F16


@numba.njit(cache=True)
def _planes3(d0, d1, d2, si, sj, xs, xe, w_in, w_out, m0, m1, m2, s0, s1, s2):
    # float32 NCHW, 3 channels: pixel w's interleaved bytes 3w..3w+2 go to the three planes in one loop.
    for w in range(d0.size):
        wt = w_in if (xs <= w) & (w < xe) else w_out
        d0[w] = arith.mix_value(si[3 * w], sj[3 * w], wt, m0, s0)
        d1[w] = arith.mix_value(si[3 * w + 1], sj[3 * w + 1], wt, m1, s1)
        d2[w] = arith.mix_value(si[3 * w + 2], sj[3 * w + 2], wt, m2, s2)


@numba.njit(cache=True)
def _contiguous(d, si, sj, ks, ke, w_in, w_out, mean_k, inv_k):
    # float32 channels_last or 1 channel: output value k is input byte k of the row.
    for k in range(d.size):
        wt = w_in if (ks <= k) & (k < ke) else w_out
        d[k] = arith.mix_value(si[k], sj[k], wt, mean_k[k], inv_k[k])


@numba.njit(cache=True)
def _encode(dst, src, enc):
    # float32 values to fp16/bf16 bits, contiguous in and out, so the conversion vectorizes.
    if enc == arith.ENC_F16:
        for k in range(src.size):
            dst[k] = arith.f32_to_f16_bits(src[k])
    else:
        for k in range(src.size):
            dst[k] = arith.f32_to_bf16_bits(src[k])


@numba.njit(cache=True)
def _row(dst, b, h, si, sj, xs, xe, w_in, w_out, mean, inv_std, mean_k, inv_k, enc, nhwc, scratch):
    """Image row h of sample b into ``dst``: float32 straight into it, 16-bit types through ``scratch``."""
    channels = mean.size
    width = si.size // channels
    contiguous = nhwc or channels == 1
    if enc == _F32:
        if contiguous:
            row = dst[b, h].reshape(si.size) if nhwc else dst[b, 0, h]
            _contiguous(row, si, sj, xs * channels, xe * channels, w_in, w_out, mean_k, inv_k)
        else:
            _planes3(dst[b, 0, h], dst[b, 1, h], dst[b, 2, h], si, sj, xs, xe, w_in, w_out, mean[0], mean[1],
                     mean[2], inv_std[0], inv_std[1], inv_std[2])
        return
    # 16-bit: the same float32 row in the L1-resident scratch, then one contiguous conversion pass
    if contiguous:
        _contiguous(scratch, si, sj, xs * channels, xe * channels, w_in, w_out, mean_k, inv_k)
        _encode(dst[b, h].reshape(si.size) if nhwc else dst[b, 0, h], scratch, enc)
    else:
        _planes3(scratch[:width], scratch[width:2 * width], scratch[2 * width:], si, sj, xs, xe, w_in, w_out,
                 mean[0], mean[1], mean[2], inv_std[0], inv_std[1], inv_std[2])
        for c in range(3):
            _encode(dst[b, c, h], scratch[c * width:(c + 1) * width], enc)


# The CUDA kernel has its own copy of this test (mix_normalize_cuda._erased_box): numba's simulator passes
# only scalars to njit functions, so one shared function could not take the boxes there.
@numba.njit(cache=True, inline="always")
def _box_at(eboxes, b, h, w):
    # 1 + the last of sample b's erasing boxes that holds pixel (h, w) (a later box covers an earlier one), or 0
    found = 0
    for k in range(eboxes.shape[1]):
        if eboxes[b, k, 0] <= h and h < eboxes[b, k, 2] and eboxes[b, k, 1] <= w and w < eboxes[b, k, 3]:
            found = k + 1
    return found


@numba.njit(cache=True, inline="always")
def _erase_row(out, clean, with_clean, b, j, h, height, si, sj, xs, xe, w_in, w_out, mean, inv_std, eboxes,
               ecolors, ekeys, noise, enc, nhwc, cuts, part_i, part_j):
    """Redo row h's elements that sample b's or its partner j's erasing boxes cover, in normalized units.

    The row is cut at every box edge (and the CutMix box's), so that within
    each piece both images are erased by one fixed box or not at all and the
    weight is fixed; only pieces where one of them is erased are redone.
    ``cuts``: int64 scratch of at least 4 * M + 4, ``part_i``/``part_j``:
    float32 scratch of at least W (one each per chunk of rows: no allocation
    per row). ``out``/``clean``: the outputs as flat arrays (NCHW, or NHWC if ``nhwc``).
    """
    channels = mean.size
    width = si.size // channels
    m = eboxes.shape[1]
    n = 0
    for owner in (b, j):
        for k in range(m):
            if eboxes[owner, k, 0] <= h and h < eboxes[owner, k, 2] and eboxes[owner, k, 1] < eboxes[owner, k, 3]:
                cuts[n] = eboxes[owner, k, 1]
                cuts[n + 1] = eboxes[owner, k, 3]
                n += 2
    if n == 0:
        return
    cuts[n] = xs
    cuts[n + 1] = xe
    cuts[n + 2] = 0
    cuts[n + 3] = width
    n += 4
    for a in range(1, n):  # insertion sort: a handful of edges
        v = cuts[a]
        k = a - 1
        while k >= 0 and cuts[k] > v:
            cuts[k + 1] = cuts[k]
            k -= 1
        cuts[k + 1] = v
    for piece in range(n - 1):
        lo, hi = cuts[piece], min(cuts[piece + 1], width)
        if lo >= hi:
            continue
        fi = _box_at(eboxes, b, h, lo)
        fj = _box_at(eboxes, j, h, lo)
        if fi == 0 and fj == 0:
            continue
        weight = w_in if xs <= lo and lo < xe else w_out
        for c in range(channels):
            base = np.uint32((c * height + h) * width)  # element (c, h, 0) of a sample: the noise's position
            color_i = ecolors[b, fi - 1, c] if fi else np.float32(0.0)
            color_j = ecolors[j, fj - 1, c] if fj else np.float32(0.0)
            # two loops per piece and channel, the blend and the store (short loops' setup and scalar
            # remainders cost more than their arithmetic), each specialized so that it vectorizes
            _blend_piece(part_j, fi, fj, noise, si, sj, lo, hi, c, channels, ekeys[b], ekeys[j], base, color_i,
                         color_j, mean[c], inv_std[c], weight)
            # flat offsets, not views of the outputs: a view per piece costs reference counting
            if nhwc:
                first, step = np.uint64((b * height + h) * width * channels + c), np.uint64(channels)
            else:
                first, step = np.uint64(((b * channels + c) * height + h) * width), np.uint64(1)
            _store(out, first, step, part_j, lo, hi, enc)
            if with_clean and fi:  # the clean output: the sample's own erased values
                _blend_piece(part_i, fi, fi, noise, si, si, lo, hi, c, channels, ekeys[b], ekeys[b], base, color_i,
                             color_i, mean[c], inv_std[c], np.float32(1.0))
                _store(clean, first, step, part_i, lo, hi, enc)


@numba.njit(cache=True)
def _blend_piece(dst, fi, fj, noise, si, sj, lo, hi, c, channels, key_i, key_j, base, color_i, color_j, mean,
                 inv_std, weight):
    """dst[w] = the blend of image i's and j's values of channel c at pixels [lo, hi), in normalized units.

    An image's value is its own normalized pixel (``fi``/``fj`` 0), its box
    color, or (``noise``) the pixel noise of element ``base + w``. One loop
    per combination, so that each vectorizes; 32-bit unsigned indices (numba
    checks signed ones for negative values, and 64-bit ones halve the lanes).
    """
    u0, u1 = np.uint32(lo), np.uint32(hi)
    step, first = np.uint32(channels), np.uint32(c)
    if fi and fj:
        if noise:
            for w in range(u0, u1):
                dst[w] = arith.erased_mix(arith.gauss_noise(key_i, base + w), arith.gauss_noise(key_j, base + w),
                                          weight)
        else:
            for w in range(u0, u1):
                dst[w] = arith.erased_mix(color_i, color_j, weight)
    elif fi:
        if noise:
            for w in range(u0, u1):
                dst[w] = arith.erased_mix(arith.gauss_noise(key_i, base + w),
                                          arith.normalize_value(sj[w * step + first], mean, inv_std), weight)
        else:
            for w in range(u0, u1):
                dst[w] = arith.erased_mix(color_i, arith.normalize_value(sj[w * step + first], mean, inv_std),
                                          weight)
    elif noise:
        for w in range(u0, u1):
            dst[w] = arith.erased_mix(arith.normalize_value(si[w * step + first], mean, inv_std),
                                      arith.gauss_noise(key_j, base + w), weight)
    else:
        for w in range(u0, u1):
            dst[w] = arith.erased_mix(arith.normalize_value(si[w * step + first], mean, inv_std), color_j, weight)


@numba.njit(cache=True, inline="always")
def _store(flat, first, step, values, lo, hi, enc):
    # flat[first + w * step] = values[w] encoded as ``enc``, for pixels [lo, hi) (``flat``: a whole output;
    # unsigned indices, as in ``_blend_piece``)
    if enc == _F32:
        for w in range(np.uint64(lo), np.uint64(hi)):
            flat[first + w * step] = values[w]
    elif enc == _F16:
        for w in range(np.uint64(lo), np.uint64(hi)):
            flat[first + w * step] = arith.f32_to_f16_bits(values[w])
    else:
        for w in range(np.uint64(lo), np.uint64(hi)):
            flat[first + w * step] = arith.f32_to_bf16_bits(values[w])


@numba.njit(parallel=True, cache=True)
def mix_normalize_cpu(batch, labels, lam, index, boxes, mean, inv_std, eps, enc,
                      out, targets, clean, with_clean, nhwc, chunks, eboxes, ecolors, ekeys, noise, erows):
    """batch (B,H,W,C) uint8; out/clean (B,C,H,W), or (B,H,W,C) if nhwc; targets (B,K) float32; all contiguous.

    eboxes (B,M,4) int32, ecolors (B,M,C) float32, ekeys (B,) int64: random
    erasing (M = 0: none), by box color or, with ``noise``, by the pixel noise;
    erows (B,2) int64: the rows [first, last) each sample's boxes span, so
    rows without erasing skip it at the cost of two compares. Erased
    elements are redone after the row's fast pass (``_erase_row``).
    """
    n_batch, height, width, channels = batch.shape
    num_classes = targets.shape[1]
    span = width * channels
    pixels = batch.reshape(n_batch, height, span)
    mean_k = np.empty(span, np.float32)
    inv_k = np.empty(span, np.float32)
    for k in range(span):
        mean_k[k] = mean[k % channels]
        inv_k[k] = inv_std[k % channels]
    rows = n_batch * height
    chunks = min(rows, chunks)
    flat_out, flat_clean = out.reshape(out.size), clean.reshape(clean.size)  # for _erase_row's stores
    for chunk in numba.prange(chunks):
        scratch = np.empty(span, np.float32)  # one per chunk of rows, not per row
        cuts = np.empty(4 * eboxes.shape[1] + 4, np.int64)
        part_i = np.empty(width, np.float32)
        part_j = np.empty(width, np.float32)
        for row in range(chunk * rows // chunks, (chunk + 1) * rows // chunks):
            b = row // height
            h = row - b * height
            xs, xe, w_in, w_out = arith.row_weights(lam[b], boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3], h)
            src_i = pixels[b, h]
            src_j = pixels[index[b], h]
            _row(out, b, h, src_i, src_j, xs, xe, w_in, w_out, mean, inv_std, mean_k, inv_k, enc, nhwc, scratch)
            if with_clean:  # the clean row is the sample's own pixels, weight 1 everywhere
                one = np.float32(1.0)
                _row(clean, b, h, src_i, src_i, 0, 0, one, one, mean, inv_std, mean_k, inv_k, enc, nhwc, scratch)
            j = index[b]
            if (erows[b, 0] <= h and h < erows[b, 1]) or (erows[j, 0] <= h and h < erows[j, 1]):
                _erase_row(flat_out, flat_clean, with_clean, b, j, h, height, src_i, src_j, xs, xe, w_in, w_out, mean,
                           inv_std, eboxes, ecolors, ekeys, noise, enc, nhwc, cuts, part_i, part_j)
    for b in numba.prange(n_batch):
        yi = labels[b]
        yj = labels[index[b]]
        for k in range(num_classes):
            targets[b, k] = arith.soft_target(k, yi, yj, lam[b], eps, num_classes)


def launch(batch, labels, lam, index, boxes, mean, inv_std, eps, enc, out, targets, clean=None, erasing=None):
    """Run the CPU twin on CPU torch tensors; same contract as ``mix_normalize_cuda.launch``.

    batch (B,H,W,C) uint8 contiguous; labels (B,) int64; lam (B,) float32;
    index (B,) int64; boxes (B,4) int32; mean and inv_std C floats (a sequence or a CPU tensor).
    ``out``/``clean`` have logical shape (B,C,H,W), contiguous NCHW or
    channels_last, float32 or an int16 view for fp16/bf16; targets (B,K)
    float32. erasing: None or ``(boxes, colors, keys, noise)`` (``gpumix.ErasingParams``' fields).
    Writes only the outputs.
    """
    with_clean = clean is not None
    # The kernel gets every output as a contiguous array: channels_last ones as their NHWC permutation.
    nhwc = out.shape[1] > 1 and out.stride(1) == 1

    def kernel_layout(t):
        return (t.permute(0, 2, 3, 1) if nhwc else t).numpy()

    arrays = [t.numpy() for t in (batch, labels, lam, index, boxes)]
    arrays += [np.asarray(mean, dtype=np.float32), np.asarray(inv_std, dtype=np.float32)]
    outputs = [kernel_layout(out), targets.numpy(), kernel_layout(clean if with_clean else out)]
    # 8 chunks of rows per thread: even shares when rows take unequal time (CutMix rows)
    n, _, _, channels = batch.shape
    if erasing is None:
        erase = (np.zeros((n, 0, 4), np.int32), np.zeros((n, 0, channels), np.float32), np.zeros(n, np.int64), False)
    else:
        erase = tuple(t.contiguous().numpy() for t in erasing[:3]) + (bool(erasing[3]),)
    boxes_e = erase[0]
    present = (boxes_e[..., 2] > boxes_e[..., 0]) & (boxes_e[..., 3] > boxes_e[..., 1])
    erows = np.zeros((n, 2), np.int64)  # [first, last) rows of each sample's non-empty boxes; [0, 0) for none
    if present.any():
        erows[:, 0] = np.where(present, boxes_e[..., 0], np.iinfo(np.int32).max).min(axis=1)
        erows[:, 1] = np.where(present, boxes_e[..., 2], 0).max(axis=1)
    erase = erase + (erows,)
    mix_normalize_cpu(*arrays, np.float32(eps), enc, *outputs, with_clean, nhwc, 8 * numba.get_num_threads(),
                      *erase)
