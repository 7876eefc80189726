"""Per-element arithmetic shared by the CUDA kernel and its CPU twin.

Every function here is a plain ``@numba.njit`` function. The CPU twin calls it
from an ``njit(parallel=True)`` loop and the CUDA kernel calls it from a
``@cuda.jit`` kernel, so the mixing formula, the normalization and the
float32 -> fp16/bf16 rounding live in exactly one place.

All arithmetic is float32 (one FMA-able blend, one subtract, one multiply per
element); the casts to fp16/bf16 round to nearest even, bit-exact with
``torch.Tensor.to``.
"""
import numba
import numpy as np

from gpumix.kernels.noise import NOISE_SIZE  # the pixel noise's table length (noise_row's range)

__all__ = [
    "ENC_F32",
    "ENC_F16",
    "ENC_BF16",
    "row_weights",
    "mix_value",
    "normalize_value",
    "f32_to_f16_bits",
    "f32_to_bf16_bits",
    "encode_row",
    "soft_target",
    "hash32",
    "noise_row",
    "noise_index",
    "blend",
    "erased_mix",
]

# Output encodings: the kernels write float32 values, or the 16-bit patterns
# of fp16/bf16 into an int16 view of the output tensor.
ENC_F32 = 0
ENC_F16 = 1
ENC_BF16 = 2


@numba.njit
def row_weights(lam, y0, x0, y1, x1, h):
    """Blend weights of one image row ``h``: ``(xs, xe, w_in, w_out)``.

    Pixel ``w`` of the row gets weight ``w_in`` if ``xs <= w < xe`` and
    ``w_out`` otherwise, and its value is ``x_j + weight * (x_i - x_j)``.
    Without a box (empty ``[y0, y1) x [x0, x1)``) the weight is ``lam``
    everywhere (mixup); with a box it is 0 inside (the partner's pixel) and 1
    outside (the sample's own pixel): CutMix.
    """
    one = np.float32(1.0)
    if y0 < y1 and x0 < x1:
        if y0 <= h and h < y1:
            return x0, x1, np.float32(0.0), one
        return x0, x0, one, one
    return x0, x0, lam, lam


@numba.njit
def mix_value(xi, xj, weight, mean, inv_std):
    """Normalized blend ``(x_j + weight*(x_i - x_j) - mean) * inv_std`` in float32.

    ``x_i - x_j`` is exact for uint8 inputs, so weights 0 and 1 give exactly
    ``x_j`` and ``x_i``.
    """
    fj = np.float32(xj)
    m = fj + np.float32(weight) * (np.float32(xi) - fj)
    return (m - np.float32(mean)) * np.float32(inv_std)


@numba.njit
def normalize_value(x, mean, inv_std):
    """Normalized clean value ``(x - mean) * inv_std`` in float32."""
    return (np.float32(x) - np.float32(mean)) * np.float32(inv_std)


@numba.njit
def _to_int16(bits):
    # The outputs are int16 views of fp16/bf16 tensors: the signed value with the same 16 bits, without a
    # branch (bits in [0, 65536): flip the top bit, subtract it).
    return np.int32(np.int32(bits ^ np.int32(0x8000)) - np.int32(0x8000))


@numba.njit
def _u32(x):
    # Every intermediate below is cast back to uint32: numba would widen uint32 arithmetic to 64 bits,
    # which halves the lanes of a vectorized CPU loop.
    return np.uint32(x)


@numba.njit
def f32_to_f16_bits(v):
    """IEEE fp16 bits (as a signed int16 value) of float32 ``v``, round to nearest even.

    Every case is computed and the right one selected, without branches and in
    32-bit integers, so that CPU loops over it vectorize.
    """
    u = np.float32(v).view(np.uint32)
    sign = _u32(_u32(u >> np.uint32(16)) & np.uint32(0x8000))
    a = _u32(u & np.uint32(0x7FFFFFFF))
    # normal fp16: round the 13 dropped mantissa bits to even, rebias the exponent 127 -> 15
    odd = _u32(_u32(a >> np.uint32(13)) & np.uint32(1))
    normal = _u32(_u32(_u32(_u32(a + np.uint32(0x0FFF)) + odd) - np.uint32(0x38000000)) >> np.uint32(13))
    # subnormal fp16: the 24-bit significand >> (126 - exponent), in units of 2^-24, rounded to even
    shift = np.int32(np.int32(126) - np.int32(a >> np.uint32(23)))
    shift = np.uint32(np.int32(1) if shift < np.int32(1) else (np.int32(31) if shift > np.int32(31) else shift))
    mant = _u32(_u32(a & np.uint32(0x7FFFFF)) | np.uint32(0x800000))
    sub = _u32(mant >> shift)
    rem = _u32(mant & _u32(_u32(np.uint32(1) << shift) - np.uint32(1)))
    half = _u32(np.uint32(1) << _u32(shift - np.uint32(1)))
    up = (rem > half) | ((rem == half) & (_u32(sub & np.uint32(1)) == np.uint32(1)))
    sub = _u32(sub + np.uint32(up))
    inf_or_nan = np.uint32(0x7E00) if a > np.uint32(0x7F800000) else np.uint32(0x7C00)
    h = np.uint32(0)  # <= 2^-25 rounds to zero (2^-25 itself is a tie to even 0)
    h = sub if a > np.uint32(0x33000000) else h
    h = normal if a >= np.uint32(0x38800000) else h
    h = np.uint32(0x7C00) if a >= np.uint32(0x477FF000) else h  # >= 65520 rounds to inf
    h = inf_or_nan if a >= np.uint32(0x7F800000) else h
    return _to_int16(np.int32(_u32(sign | h)))


@numba.njit
def f32_to_bf16_bits(v):
    """bfloat16 bits (as a signed int16 value) of float32 ``v``, round to nearest even.

    Written with selects rather than branches, and in 32-bit integers, so that CPU loops over it vectorize.
    """
    u = np.float32(v).view(np.uint32)
    # Finite values and inf cannot carry past bit 31: the largest sum is 0xFF807FFF.
    odd = _u32(_u32(u >> np.uint32(16)) & np.uint32(1))
    rounded = _u32(_u32(_u32(u + np.uint32(0x7FFF)) + odd) >> np.uint32(16))
    quiet_nan = _u32(_u32(u >> np.uint32(16)) | np.uint32(0x40))
    is_nan = _u32(u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    return _to_int16(np.int32(quiet_nan if is_nan else rounded))


@numba.njit
def encode_row(dst, src, enc):
    """``dst[w] = src[w]`` for a float32 row, encoded as ``enc`` (the CPU twin's stores).

    ``dst`` is float32 for ``ENC_F32`` and an int16 view for the 16-bit types;
    both may be strided. The branch sits outside the loops so each one vectorizes.
    """
    if enc == ENC_F16:
        for w in range(src.size):
            dst[w] = f32_to_f16_bits(src[w])
    elif enc == ENC_BF16:
        for w in range(src.size):
            dst[w] = f32_to_bf16_bits(src[w])
    else:
        for w in range(src.size):
            dst[w] = src[w]


@numba.njit
def soft_target(k, yi, yj, lam, eps, num_classes):
    """Class ``k`` of ``lam*s(y_i) + (1-lam)*s(y_j)``, ``s = (1-eps)*onehot + eps/K``, in float32."""
    on = np.float32(1.0) - eps
    t = eps / np.float32(num_classes)
    if k == yi:
        t += on * lam
    if k == yj:
        t += on * (np.float32(1.0) - lam)
    return t


@numba.njit
def hash32(x):
    """A bijective 32-bit integer hash with good avalanche (Chris Wellons' "lowbias32"), in uint32."""
    x = np.uint32(x)
    x = _u32(x ^ _u32(x >> np.uint32(16)))
    x = _u32(x * np.uint32(0x7FEB352D))
    x = _u32(x ^ _u32(x >> np.uint32(15)))
    x = _u32(x * np.uint32(0x846CA68B))
    return _u32(x ^ _u32(x >> np.uint32(16)))


@numba.njit
def noise_row(key, h):
    """Where the pixel noise of image row ``h`` starts in the noise table, under the sample's uint32 ``key``.

    Counter-based: a hash of the key and the row (spread by the golden
    ratio), in ``[0, NOISE_SIZE)``. The row's noise is a run of consecutive
    table values in channels_last order: element ``(c, h, w)`` of a C-channel
    sample takes table value ``noise_index(key, h, w * C + c)``, so a CPU
    loop over a channels_last row reads the run contiguously (and an NCHW
    plane reads it with a stride of C).
    """
    start = hash32(_u32(np.uint32(key) ^ _u32(np.uint32(h) * np.uint32(0x9E3779B9))))
    return _u32(start & np.uint32(NOISE_SIZE - 1))


@numba.njit
def noise_index(key, h, k):
    """The noise table's index of value ``k`` (``w * C + c``) of image row ``h`` under ``key``."""
    return _u32(_u32(noise_row(key, h) + np.uint32(k)) & np.uint32(NOISE_SIZE - 1))


@numba.njit
def blend(ni, nj, weight):
    """``nj + weight * (ni - nj)`` of two float32 values, normalized (or erased), in float32.

    The blend of ``erased_mix`` without its selects: the same value for every
    weight strictly between 0 and 1 (the CPU twin writes the pieces of weight
    0 or 1 with loops that read only the image they keep).
    """
    ni, nj = np.float32(ni), np.float32(nj)
    return nj + np.float32(weight) * (ni - nj)


@numba.njit
def erased_mix(ni, nj, weight):
    """The blend of two already normalized (or erased) values: ``nj + weight * (ni - nj)`` in float32.

    Erasing happens after normalization and before mixing (timm's order), so
    a pixel that is erased in either image is mixed in normalized units.
    Weights 1 and 0 (CutMix) give exactly ``ni`` and ``nj``: the kernels may
    not read the image a weight of 0 ignores, so its value must not matter.
    (Every input is cast to float32: numba's simulator passes Python floats.)
    """
    ni, nj, w = np.float32(ni), np.float32(nj), np.float32(weight)
    mixed = blend(ni, nj, w)
    mixed = ni if w == np.float32(1.0) else mixed
    return nj if w == np.float32(0.0) else mixed
