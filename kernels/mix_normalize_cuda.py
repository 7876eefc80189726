"""The fused mixup/CutMix + normalize + layout + cast CUDA kernels and their launch wrapper.

One kernel is compiled per ``Variant``: output dtype x layout x clean x
channels (1 or 3), plus the load path and the conversion path. Each is
straight-line code for its case, with no runtime dtype or layout branch.

Work split: the grid's y dimension walks the samples and its x dimension
the pixels of one image, in groups of ``PIXELS`` = 4 consecutive pixels of
one row per thread and iteration. Per sample, a thread loads the partner
index, ``lam`` and the box once, then loops over its groups:

- **word path** (``Variant.wide``, when ``W % 4 == 0`` and the batch is
  4-byte aligned): a group is 4*C bytes, read as C 32-bit words from each
  image; outputs go out as one 16-byte (fp32) or 8-byte (fp16/bf16) vector
  store per plane (NCHW) or 4*C consecutive values (channels_last).
- **byte path** (any width and alignment): the same groups read byte by byte
  and stored element by element, with the row's last group cut at ``W``.

With a CutMix box a group reads only the images its pixels need: ``x_j``
where some pixel is inside the box, ``x_i`` where some is outside (and always
for the clean output). An unread image counts as 0 with weight 0, which gives
exactly the same value as reading it. Index arithmetic is 32-bit (64-bit in
the ``index64`` variants, chosen when an offset would not fit). fp16/bf16
rounding uses ``cvt.rn`` on sm_80 and newer (``gpumix.kernels.ptx``), and
``gpumix.kernels.arith``'s software rounding elsewhere and in the simulator:
the same bits. The per-element arithmetic (blend, normalization, soft target)
is ``gpumix.kernels.arith``, shared with the CPU twin.

Blocks with ``blockIdx.x == 0`` also write their sample's soft-target row.
"""
import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numba import config as numba_config
from numba import cuda

from gpumix.kernels import arith, ptx
from gpumix.kernels import noise as noise_table

__all__ = ["Variant", "DTYPES", "PIXELS", "BLOCK", "kernel", "variants", "select", "signature", "grid", "launch"]

DTYPES = {"float32": arith.ENC_F32, "float16": arith.ENC_F16, "bfloat16": arith.ENC_BF16}
# Pixels per thread and iteration: 4 bytes per channel, so one 32-bit load per channel and image.
PIXELS = 4
# 256 threads: 8 warps per block, enough to hide latency on every GPU since Volta.
BLOCK = 256
# Iterations each thread aims for, so the per-sample setup (partner, lam, box) is paid once per 4 groups.
GROUPS_PER_THREAD = 4
# Under numba's simulator every thread is a Python thread: small blocks keep the tests fast, and make
# each thread take several grid-stride steps, so the tests walk the stepping code too.
SIMULATOR_BLOCK = 32
# CUDA caps gridDim.y at 65535; larger batches are walked by a grid-stride loop.
MAX_GRID_Y = 65535
_INT32_MAX = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class Variant:
    """One compiled specialization of the kernel.

    dtype: 'float32', 'float16' or 'bfloat16'; channels_last: NHWC output
    memory (for 1 channel the same memory as NCHW); clean: also write the
    unmixed batch; channels: 1 or 3; wide: the 32-bit word path (else bytes);
    hardware_cvt: ``cvt.rn`` for fp16/bf16 (sm_80+), else software rounding;
    index64: 64-bit offsets for outputs of 2**31 elements or more; erase:
    None, 'color' (random erasing with a color per box) or 'pixel' (with
    the pixel noise of ``gpumix.kernels.noise``), applied before mixing.
    """

    dtype: str = "float32"
    channels_last: bool = False
    clean: bool = False
    channels: int = 3
    wide: bool = True
    hardware_cvt: bool = True
    index64: bool = False
    erase: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
        if self.erase not in (None, "color", "pixel"):
            raise ValueError(f"erase must be None, 'color' or 'pixel', got {self.erase!r}")

    @property
    def name(self) -> str:
        """A short readable name, e.g. ``f16_nhwc_c3_clean``."""
        short = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}[self.dtype]
        layout = "nhwc" if self.channels_last else "nchw"
        parts = [short, layout, f"c{self.channels}"]
        parts += ["clean"] if self.clean else []
        parts += [] if self.wide else ["bytes"]
        parts += [] if self.hardware_cvt or self.dtype == "float32" else ["swcvt"]
        parts += ["i64"] if self.index64 else []
        parts += [f"erase{self.erase}"] if self.erase else []
        return "_".join(parts)


def variants(wide: bool = True) -> list[Variant]:
    """Every dtype x layout x clean x channels variant (24), word or byte path."""
    return [Variant(dtype, layout, clean, channels, wide)
            for channels in (3, 1) for dtype in DTYPES for layout in (False, True) for clean in (False, True)]


@cuda.jit(device=True)
def _byte(word, shift):
    # Byte (word >> shift) & 0xFF as an exact float32, without a slow integer conversion:
    # placed in the mantissa of 2**23 (bits 0x4B000000), then 2**23 subtracted.
    bits = np.uint32(np.uint32(0x4B000000) | np.uint32(np.uint32(word >> shift) & np.uint32(0xFF)))
    return bits.view(np.float32) - np.float32(8388608.0)


@cuda.jit(device=True)
def _bytes1(src, word, need):
    # 4 pixels of 1 channel: one 32-bit word; an unread word counts as 0.
    a = src[word] if need else np.uint32(0)
    return (_byte(a, 0), _byte(a, 8), _byte(a, 16), _byte(a, 24))


@cuda.jit(device=True)
def _bytes3(src, word, need):
    # 4 pixels of 3 channels: 12 bytes in three 32-bit words, pixel-major (r g b r | g b r g | b r g b).
    a0 = src[word] if need else np.uint32(0)
    a1 = src[word + 1] if need else np.uint32(0)
    a2 = src[word + 2] if need else np.uint32(0)
    return (_byte(a0, 0), _byte(a0, 8), _byte(a0, 16), _byte(a0, 24),
            _byte(a1, 0), _byte(a1, 8), _byte(a1, 16), _byte(a1, 24),
            _byte(a2, 0), _byte(a2, 8), _byte(a2, 16), _byte(a2, 24))


@cuda.jit(device=True)
def _write_targets(targets, labels, b, j, lam_b, eps, first, step):
    num_classes = targets.shape[1]
    yi = labels[b]
    yj = labels[j]
    k = first
    while k < num_classes:  # a while loop: range() with a step would divide to count its trips
        targets[b, k] = arith.soft_target(k, yi, yj, lam_b, eps, num_classes)
        k += step


@cuda.jit(device=True)
def _sample_setup(b, labels, lam, index, boxes, targets, eps):
    """What a thread loads once per sample: (partner j, CutMix box, has_box, weight outside the box).

    Blocks with ``blockIdx.x == 0`` also write the sample's soft-target row.
    """
    j = index[b]
    lam_b = lam[b]
    y0, x0, y1, x1 = boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3]
    has_box = y0 < y1 and x0 < x1
    w_out = np.float32(1.0) if has_box else lam_b
    if cuda.blockIdx.x == 0:
        _write_targets(targets, labels, b, j, lam_b, eps, cuda.threadIdx.x, cuda.blockDim.x)
    return j, y0, x0, y1, x1, has_box, w_out


# Erasing's box test exists twice, here and in the CPU twin: numba's simulator passes only scalars, not
# arrays, to the njit functions of gpumix.kernels.arith, so a shared one could not take the boxes.
@cuda.jit(device=True)
def _erased_box(eboxes, b, h, w):
    # 1 + the last of sample b's erasing boxes that holds pixel (h, w) (a later box covers an earlier one), or 0
    found = 0
    for k in range(eboxes.shape[1]):
        if eboxes[b, k, 0] <= h and h < eboxes[b, k, 2] and eboxes[b, k, 1] <= w and w < eboxes[b, k, 3]:
            found = k + 1
    return found


@cuda.jit(device=True)
def _erased_value(found, ecolors, ekeys, ntab, b, c, h, k, noise):
    # What erasing puts at channel c of sample b's row h, value k (w * C + c) of the row, in normalized units.
    if noise:
        return ntab[arith.noise_index(ekeys[b], h, k)]
    return ecolors[b, found - 1, c]


@cuda.jit(device=True)
def _erase_fix(prev, x_i, x_j, fi, fj, weight, mean, inv, ecolors, ekeys, ntab, b, j, c, h, k, noise):
    # The mixed value of one element when either image is erased there (else `prev`, the fast path's).
    if fi == 0 and fj == 0:
        return prev
    ni = _erased_value(fi, ecolors, ekeys, ntab, b, c, h, k, noise) if fi else arith.normalize_value(x_i, mean, inv)
    nj = _erased_value(fj, ecolors, ekeys, ntab, j, c, h, k, noise) if fj else arith.normalize_value(x_j, mean, inv)
    return arith.erased_mix(ni, nj, weight)


@cuda.jit(device=True)
def _erase_fix_clean(prev, fi, ecolors, ekeys, ntab, b, c, h, k, noise):
    if fi == 0:
        return prev
    return _erased_value(fi, ecolors, ekeys, ntab, b, c, h, k, noise)


@functools.lru_cache(maxsize=None)
def kernel(variant: Variant) -> Any:
    """The compiled-on-first-launch CUDA kernel of ``variant`` (a ``Variant``), cached per process."""
    if not isinstance(variant, Variant):
        raise TypeError(f"variant must be a Variant, got {type(variant).__name__}")
    return (_word_kernel if variant.wide else _byte_kernel)(variant)


def _word_kernel(v):
    enc = DTYPES[v.dtype]
    C = v.channels
    nhwc = v.channels_last and C > 1
    clean = v.clean
    erase = v.erase is not None
    noise = v.erase == "pixel"
    I = np.int64 if v.index64 else np.int32  # noqa: E741 -- the offset type
    f32 = np.float32
    load = _bytes3 if C == 3 else _bytes1
    if enc == arith.ENC_F16:
        pack = ptx.cvt_f16x2 if v.hardware_cvt else ptx.sw_pack_f16x2
    else:
        pack = ptx.cvt_bf16x2 if v.hardware_cvt else ptx.sw_pack_bf16x2

    # Each case below is chosen here, in Python, so every compiled kernel holds only its own code.
    if enc == arith.ENC_F32:
        @cuda.jit(device=True)
        def store4(dst, e, a, b, c, d):
            # 4 consecutive output values from element e (a multiple of 4): one 16-byte store.
            ptx.store_f32x4(dst, e, a, b, c, d)
    else:
        @cuda.jit(device=True)
        def store4(dst, e, a, b, c, d):
            # 4 consecutive 16-bit values from element e: two packed words, one 8-byte store.
            ptx.store_u32x2(dst, I(e >> I(1)), pack(b, a), pack(d, c))

    if C == 1:
        @cuda.jit(device=True)
        def write(dst, b, p, hw, v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11):
            store4(dst, I(b * hw + p), v0, v1, v2, v3)
    elif nhwc:
        @cuda.jit(device=True)
        def write(dst, b, p, hw, v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11):
            # pixel-major values: 12 consecutive outputs
            e = I((b * hw + p) * I(3))
            store4(dst, e, v0, v1, v2, v3)
            store4(dst, I(e + I(4)), v4, v5, v6, v7)
            store4(dst, I(e + I(8)), v8, v9, v10, v11)
    else:
        @cuda.jit(device=True)
        def write(dst, b, p, hw, v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11):
            # 4 values into each of the 3 planes
            e = I(b * I(3) * hw + p)
            store4(dst, e, v0, v3, v6, v9)
            store4(dst, I(e + hw), v1, v4, v7, v10)
            store4(dst, I(e + hw + hw), v2, v5, v8, v11)

    @cuda.jit(device=True)
    def mix4(bi, bj, k, w0, w1, w2, w3, mean, inv):
        # Channel values k, k+C, k+2C, k+3C (one channel of the 4 pixels).
        return (arith.mix_value(bi[k], bj[k], w0, mean, inv),
                arith.mix_value(bi[k + C], bj[k + C], w1, mean, inv),
                arith.mix_value(bi[k + 2 * C], bj[k + 2 * C], w2, mean, inv),
                arith.mix_value(bi[k + 3 * C], bj[k + 3 * C], w3, mean, inv))

    @cuda.jit(device=True)
    def norm4(bi, k, mean, inv):
        return (arith.normalize_value(bi[k], mean, inv), arith.normalize_value(bi[k + C], mean, inv),
                arith.normalize_value(bi[k + 2 * C], mean, inv), arith.normalize_value(bi[k + 3 * C], mean, inv))

    if C == 1:
        @cuda.jit(device=True)
        def emit(dst, b, p, hw, r, g, bl):
            zero = f32(0)
            write(dst, b, p, hw, r[0], r[1], r[2], r[3], zero, zero, zero, zero, zero, zero, zero, zero)

        @cuda.jit(device=True)
        def values(xi, xj, wt0, wt1, wt2, wt3, m0, m1, m2, s0, s1, s2):
            r = mix4(xi, xj, 0, wt0, wt1, wt2, wt3, m0, s0)
            return r, r, r

        @cuda.jit(device=True)
        def clean_values(xi, m0, m1, m2, s0, s1, s2):
            r = norm4(xi, 0, m0, s0)
            return r, r, r
    else:
        @cuda.jit(device=True)
        def emit(dst, b, p, hw, r, g, bl):
            # per channel, the 4 pixels' values; reordered pixel-major for write()
            write(dst, b, p, hw, r[0], g[0], bl[0], r[1], g[1], bl[1], r[2], g[2], bl[2], r[3], g[3], bl[3])

        @cuda.jit(device=True)
        def values(xi, xj, wt0, wt1, wt2, wt3, m0, m1, m2, s0, s1, s2):
            return (mix4(xi, xj, 0, wt0, wt1, wt2, wt3, m0, s0), mix4(xi, xj, 1, wt0, wt1, wt2, wt3, m1, s1),
                    mix4(xi, xj, 2, wt0, wt1, wt2, wt3, m2, s2))

        @cuda.jit(device=True)
        def clean_values(xi, m0, m1, m2, s0, s1, s2):
            return norm4(xi, 0, m0, s0), norm4(xi, 1, m1, s1), norm4(xi, 2, m2, s2)

    @cuda.jit(device=True)
    def fix4(prev, xi, xj, k, fi, fj, wt, mean, inv, ecolors, ekeys, ntab, b, j, h, w):
        # channel k of the 4 pixels w..w+3 of row h, redone where erasing touches them
        e = w * C + k  # the row's value of pixel w, channel k
        return (_erase_fix(prev[0], xi[k], xj[k], fi[0], fj[0], wt[0], mean, inv, ecolors, ekeys, ntab, b, j, k,
                           h, e, noise),
                _erase_fix(prev[1], xi[k + C], xj[k + C], fi[1], fj[1], wt[1], mean, inv, ecolors, ekeys, ntab, b,
                           j, k, h, e + C, noise),
                _erase_fix(prev[2], xi[k + 2 * C], xj[k + 2 * C], fi[2], fj[2], wt[2], mean, inv, ecolors, ekeys,
                           ntab, b, j, k, h, e + 2 * C, noise),
                _erase_fix(prev[3], xi[k + 3 * C], xj[k + 3 * C], fi[3], fj[3], wt[3], mean, inv, ecolors, ekeys,
                           ntab, b, j, k, h, e + 3 * C, noise))

    @cuda.jit(device=True)
    def fix_clean4(prev, k, fi, ecolors, ekeys, ntab, b, h, w):
        e = w * C + k
        return (_erase_fix_clean(prev[0], fi[0], ecolors, ekeys, ntab, b, k, h, e, noise),
                _erase_fix_clean(prev[1], fi[1], ecolors, ekeys, ntab, b, k, h, e + C, noise),
                _erase_fix_clean(prev[2], fi[2], ecolors, ekeys, ntab, b, k, h, e + 2 * C, noise),
                _erase_fix_clean(prev[3], fi[3], ecolors, ekeys, ntab, b, k, h, e + 3 * C, noise))

    @cuda.jit
    def mix_normalize_word(src, labels, lam, index, boxes, out, cln, targets, eboxes, ecolors, ekeys, ntab, m0, m1, m2,
                           s0, s1, s2, eps, height, width, step_h, step_w):
        """src: the (B,H,W,C) uint8 batch as uint32 words; out/cln: flat float32, or uint32 pairs of fp16/bf16."""
        hw = I(I(height) * I(width))
        groups = I(hw >> I(2))
        first = I(I(cuda.blockIdx.x) * I(cuda.blockDim.x) + I(cuda.threadIdx.x))
        stride = I(I(cuda.gridDim.x) * I(cuda.blockDim.x))
        p_first = I(first * I(PIXELS))
        h_first = np.int32(p_first // I(width))
        w_first = np.int32(p_first - I(h_first) * I(width))
        for b in range(cuda.blockIdx.y, labels.shape[0], cuda.gridDim.y):
            j, y0, x0, y1, x1, has_box, w_out = _sample_setup(b, labels, lam, index, boxes, targets, eps)
            bi = I(b)
            bj = I(j)
            g = first
            h = h_first
            w = w_first
            while g < groups:
                # weights of the 4 pixels: 0 inside the box (partner's pixel), else 1 (CutMix) or lam
                row_in = has_box and y0 <= h and h < y1
                in0 = row_in and x0 <= w and w < x1
                in1 = row_in and x0 <= w + 1 and w + 1 < x1
                in2 = row_in and x0 <= w + 2 and w + 2 < x1
                in3 = row_in and x0 <= w + 3 and w + 3 < x1
                wt0 = f32(0.0) if in0 else w_out
                wt1 = f32(0.0) if in1 else w_out
                wt2 = f32(0.0) if in2 else w_out
                wt3 = f32(0.0) if in3 else w_out
                need_j = in0 or in1 or in2 or in3 or not has_box
                need_i = clean or not (in0 and in1 and in2 and in3)
                p = I(g * I(PIXELS))
                xi = load(src, I(I(I(bi * hw + p) >> I(2)) * I(C)), need_i)
                xj = load(src, I(I(I(bj * hw + p) >> I(2)) * I(C)), need_j)
                r, gr, bl = values(xi, xj, wt0, wt1, wt2, wt3, m0, m1, m2, s0, s1, s2)
                touched = False
                fi = (0, 0, 0, 0)
                if erase:  # random erasing: redo the elements either image erases, in normalized units
                    fi = (_erased_box(eboxes, b, h, w), _erased_box(eboxes, b, h, w + 1),
                          _erased_box(eboxes, b, h, w + 2), _erased_box(eboxes, b, h, w + 3))
                    fj = (_erased_box(eboxes, j, h, w), _erased_box(eboxes, j, h, w + 1),
                          _erased_box(eboxes, j, h, w + 2), _erased_box(eboxes, j, h, w + 3))
                    touched = fi[0] + fi[1] + fi[2] + fi[3] + fj[0] + fj[1] + fj[2] + fj[3] > 0
                    wt = (wt0, wt1, wt2, wt3)
                    if touched:
                        r = fix4(r, xi, xj, 0, fi, fj, wt, m0, s0, ecolors, ekeys, ntab, b, j, h, w)
                        if C == 3:
                            gr = fix4(gr, xi, xj, 1, fi, fj, wt, m1, s1, ecolors, ekeys, ntab, b, j, h, w)
                            bl = fix4(bl, xi, xj, 2, fi, fj, wt, m2, s2, ecolors, ekeys, ntab, b, j, h, w)
                emit(out, bi, p, hw, r, gr, bl)
                if clean:
                    r, gr, bl = clean_values(xi, m0, m1, m2, s0, s1, s2)
                    if erase:
                        if touched:
                            r = fix_clean4(r, 0, fi, ecolors, ekeys, ntab, b, h, w)
                            if C == 3:
                                gr = fix_clean4(gr, 1, fi, ecolors, ekeys, ntab, b, h, w)
                                bl = fix_clean4(bl, 2, fi, ecolors, ekeys, ntab, b, h, w)
                    emit(cln, bi, p, hw, r, gr, bl)
                g = I(g + stride)
                h = np.int32(h + step_h)
                w = np.int32(w + step_w)
                if w >= width:
                    w = np.int32(w - width)
                    h = np.int32(h + 1)

    return mix_normalize_word


def _byte_kernel(v):
    enc = DTYPES[v.dtype]
    C = v.channels
    nhwc = v.channels_last and C > 1
    clean = v.clean
    erase = v.erase is not None
    noise = v.erase == "pixel"
    I = np.int64 if v.index64 else np.int32  # noqa: E741 -- the offset type
    f32 = np.float32
    if enc == arith.ENC_F16:
        convert = ptx.cvt_f16 if v.hardware_cvt else ptx.sw_f16
    else:
        convert = ptx.cvt_bf16 if v.hardware_cvt else ptx.sw_bf16

    @cuda.jit(device=True)
    def put(dst, b, c, p, hw, value):
        e = I(I(b * hw + p) * I(C) + I(c)) if nhwc else I(I(b * I(C) + I(c)) * hw + p)
        if enc == arith.ENC_F32:
            dst[e] = value
        else:
            dst[e] = convert(value)

    @cuda.jit(device=True)
    def pixel(src, out, cln, bi, bj, hw, p, weight, c, mean, inv, fi, fj, ecolors, ekeys, ntab, h, w):
        # fi, fj: 1 + the erasing box of sample bi / partner bj at this pixel, or 0
        need_i = clean or weight != f32(0.0) or fi > 0
        need_j = weight != f32(1.0) or fj > 0
        xi = src[I(I(bi * hw + p) * I(C) + I(c))] if need_i else np.uint8(0)
        xj = src[I(I(bj * hw + p) * I(C) + I(c))] if need_j else np.uint8(0)
        value = arith.mix_value(xi, xj, weight, mean, inv)
        k = w * C + c  # the row's value of this element (channels_last order): where its noise is
        if erase:
            value = _erase_fix(value, xi, xj, fi, fj, weight, mean, inv, ecolors, ekeys, ntab, bi, bj, c, h, k, noise)
        put(out, bi, c, p, hw, value)
        if clean:
            value = arith.normalize_value(xi, mean, inv)
            if erase:
                value = _erase_fix_clean(value, fi, ecolors, ekeys, ntab, bi, c, h, k, noise)
            put(cln, bi, c, p, hw, value)

    @cuda.jit
    def mix_normalize_bytes(src, labels, lam, index, boxes, out, cln, targets, eboxes, ecolors, ekeys, ntab, m0, m1, m2,
                            s0, s1, s2, eps, height, width, step_h, step_w):
        """src: the flat (B,H,W,C) uint8 batch; out/cln: flat float32, or uint16 bits of fp16/bf16."""
        hw = I(I(height) * I(width))
        row_groups = np.int32(np.int32(width + np.int32(PIXELS - 1)) >> np.int32(2))
        groups = I(I(height) * I(row_groups))
        first = I(I(cuda.blockIdx.x) * I(cuda.blockDim.x) + I(cuda.threadIdx.x))
        stride = I(I(cuda.gridDim.x) * I(cuda.blockDim.x))
        h_first = np.int32(first // I(row_groups))
        q_first = np.int32(first - I(h_first) * I(row_groups))
        for b in range(cuda.blockIdx.y, labels.shape[0], cuda.gridDim.y):
            j, y0, x0, y1, x1, has_box, w_out = _sample_setup(b, labels, lam, index, boxes, targets, eps)
            bi = I(b)
            bj = I(j)
            g = first
            h = h_first
            q = q_first
            while g < groups:
                row_in = has_box and y0 <= h and h < y1
                for k in range(PIXELS):
                    w = np.int32(q * np.int32(PIXELS) + np.int32(k))
                    if w < width:
                        weight = f32(0.0) if row_in and x0 <= w and w < x1 else w_out
                        p = I(I(h) * I(width) + I(w))
                        fi = _erased_box(eboxes, b, h, w) if erase else 0
                        fj = _erased_box(eboxes, j, h, w) if erase else 0
                        pixel(src, out, cln, bi, bj, hw, p, weight, 0, m0, s0, fi, fj, ecolors, ekeys, ntab, h, w)
                        if C == 3:
                            pixel(src, out, cln, bi, bj, hw, p, weight, 1, m1, s1, fi, fj, ecolors, ekeys, ntab, h, w)
                            pixel(src, out, cln, bi, bj, hw, p, weight, 2, m2, s2, fi, fj, ecolors, ekeys, ntab, h, w)
                g = I(g + stride)
                h = np.int32(h + step_h)
                q = np.int32(q + step_w)
                if q >= row_groups:
                    q = np.int32(q - row_groups)
                    h = np.int32(h + 1)

    return mix_normalize_bytes


def signature(variant: Variant) -> str:
    """The numba signature string of ``variant``'s kernel (for ``numba.cuda.compile_ptx`` without a GPU)."""
    # sizes are passed as int32; the index64 variants widen their offsets inside the kernel
    if variant.wide:
        src = "uint32[::1]"
        out = "float32[::1]" if variant.dtype == "float32" else "uint32[::1]"
    else:
        src = "uint8[::1]"
        out = "float32[::1]" if variant.dtype == "float32" else "uint16[::1]"
    return (f"void({src}, int64[::1], float32[::1], int64[::1], int32[:, ::1], {out}, {out}, float32[:, ::1], "
            "int32[:, :, ::1], float32[:, :, ::1], int64[::1], float32[::1], "
            "float32, float32, float32, float32, float32, float32, float32, int32, int32, int32, int32)")


def grid(variant: Variant, n_batch: int, height: int, width: int,
         block: int = BLOCK) -> tuple[tuple[int, int], tuple[int, int]]:
    """((blocks_x, blocks_y), (step_h, step_w)): the launch grid and a thread's advance per iteration.

    A thread advances ``blocks_x * block`` groups per iteration: ``step_h``
    rows and ``step_w`` columns (pixels on the word path, groups of 4 on the
    byte path), carried into the next row in the kernel.
    """
    row_groups = width // PIXELS if variant.wide else -(-width // PIXELS)
    groups = height * row_groups
    blocks_x = max(1, math.ceil(groups / (block * GROUPS_PER_THREAD)))
    stride = blocks_x * block
    step_h, step_g = divmod(stride, row_groups)
    # the word path tracks the pixel column, the byte path the group column
    step_w = step_g * PIXELS if variant.wide else step_g
    return (blocks_x, min(n_batch, MAX_GRID_Y)), (step_h, step_w)


def select(batch: torch.Tensor, out: torch.Tensor, dtype: str, channels_last: bool, clean: bool,
           device_capability: tuple[int, int] | None = None, erase: str | None = None) -> Variant:
    """The ``Variant`` that runs ``batch`` into ``out``: the word path when the width and alignment allow it.

    ``device_capability`` (major, minor) chooses hardware fp16/bf16 rounding
    from sm_80 on; None (the simulator) means software rounding.
    """
    n_batch, height, width, channels = batch.shape
    wide = width % PIXELS == 0 and batch.data_ptr() % 4 == 0 and out.data_ptr() % 16 == 0
    hardware = device_capability is not None and tuple(device_capability) >= (8, 0)
    largest = n_batch * height * width * channels
    return Variant(dtype=dtype, channels_last=channels_last, clean=clean, channels=channels,
                   wide=wide, hardware_cvt=hardware, index64=largest > _INT32_MAX, erase=erase)


@functools.lru_cache(maxsize=None)
def _noise_table(device: torch.device) -> torch.Tensor:
    # The pixel noise's table (gpumix.kernels.noise) on `device`, copied there once per process.
    return torch.from_numpy(noise_table.table().copy()).to(device)


def launch(batch: torch.Tensor, labels: torch.Tensor, lam: torch.Tensor, index: torch.Tensor, boxes: torch.Tensor,
           mean: Sequence[float] | torch.Tensor, inv_std: Sequence[float] | torch.Tensor, eps: float, enc: int,
           out: torch.Tensor, targets: torch.Tensor, clean: torch.Tensor | None = None,
           erasing: tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool] | None = None) -> None:
    """Launch the kernel on torch's current stream of ``batch.device``; nothing is synchronized.

    All arguments are torch tensors on one CUDA device (CPU tensors are
    accepted only under ``NUMBA_ENABLE_CUDASIM=1``, for tests):
    batch (B,H,W,C) uint8 contiguous; labels (B,) int64; lam (B,) float32;
    index (B,) int64; boxes (B,4) int32 half-open (y0,x0,y1,x1); mean and
    inv_std C floats (a sequence or a CPU tensor), passed as float32 kernel
    arguments; eps float; enc one of
    ``arith.ENC_*``. ``out`` and ``clean`` have logical shape (B,C,H,W),
    contiguous NCHW or channels_last, float32 for ``ENC_F32`` or an int16
    view for fp16/bf16; targets (B,K) float32.
    erasing: None, or ``(boxes, colors, keys, noise)``: int32 (B,M,4),
    float32 (B,M,C), int64 (B,) tensors on the batch's device and a bool
    (``gpumix.ErasingParams``' fields); the pixel noise is read from
    ``gpumix.kernels.noise.table()``, copied to the device once.
    Writes ``out``, ``targets`` and ``clean``; reads everything else.
    """
    n_batch, height, width, channels = batch.shape
    with_clean = clean is not None
    # The kernel gets every output as a contiguous array: channels_last ones as their NHWC permutation.
    nhwc = channels > 1 and out.stride(1) == 1
    dtype = {v: k for k, v in DTYPES.items()}[enc]
    capability = torch.cuda.get_device_capability(batch.device) if batch.is_cuda else None
    erase = None if erasing is None else ("pixel" if erasing[3] else "color")
    variant = select(batch, out, dtype, nhwc, with_clean, capability, erase)  # 1 channel: NCHW is NHWC
    erase_arrays: tuple[torch.Tensor, ...]
    if erasing is None:  # the kernels take the erasing arrays always; these are empty
        erase_arrays = (boxes.new_empty((n_batch, 0, 4)), lam.new_empty((n_batch, 0, channels)), index.new_empty(0))
    else:
        erase_arrays = tuple(erasing[:3])
    erase_arrays += (_noise_table(batch.device),)
    block = BLOCK if batch.is_cuda else SIMULATOR_BLOCK
    (blocks_x, blocks_y), (step_h, step_w) = grid(variant, n_batch, height, width, block)
    stats = [float(x) for x in mean] + [0.0] * (3 - channels)
    stats += [float(x) for x in inv_std] + [0.0] * (3 - channels)
    scalars = [np.float32(x) for x in stats] + [np.float32(eps)]
    sizes = [np.int32(height), np.int32(width), np.int32(step_h), np.int32(step_w)]

    def flat(t):
        return (t.permute(0, 2, 3, 1) if nhwc else t).reshape(-1)

    # Without clean, an empty array of out's type: passing out twice would let
    # the simulator copy the unwritten second copy back over the first.
    outputs = (flat(out), flat(clean) if with_clean else out.new_empty(0))
    word = {"float32": np.float32, "float16": np.uint32, "bfloat16": np.uint32}[dtype]
    element = {"float32": np.float32, "float16": np.uint16, "bfloat16": np.uint16}[dtype]
    src_type = np.uint32 if variant.wide else np.uint8
    out_type = word if variant.wide else element
    run = kernel(variant)
    config = (blocks_x, blocks_y), block
    if batch.is_cuda:
        with cuda.gpus[batch.device.index]:
            stream = cuda.external_stream(torch.cuda.current_stream(batch.device).cuda_stream)
            # sync=False: we launch on the very stream torch queued these tensors on.
            src = cuda.as_cuda_array(batch.reshape(-1), sync=False).view(src_type)
            o = [cuda.as_cuda_array(t, sync=False).view(out_type) for t in outputs]
            a = [cuda.as_cuda_array(t, sync=False) for t in (labels, lam, index, boxes)]
            e = [cuda.as_cuda_array(t.contiguous(), sync=False) for t in erase_arrays]
            run[config[0], config[1], stream](src, *a, *o, cuda.as_cuda_array(targets, sync=False), *e, *scalars,
                                              *sizes)
        return
    if not numba_config.ENABLE_CUDASIM:  # type: ignore[attr-defined]  # numba sets its config attributes at run time
        raise RuntimeError("the CUDA kernel needs CUDA tensors (or NUMBA_ENABLE_CUDASIM=1 for tests)")
    src = batch.reshape(-1).numpy().view(src_type)
    o = [t.numpy().view(out_type) for t in outputs]
    a = [t.numpy() for t in (labels, lam, index, boxes)]
    e = [t.contiguous().numpy() for t in erase_arrays]
    run[config[0], config[1]](src, *a, *o, targets.numpy(), *e, *scalars, *sizes)
