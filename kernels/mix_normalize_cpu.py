"""The CPU twin of the fused kernel, and its launch wrapper.

A single ``numba.njit(parallel=True)`` pass: threads take the ``B*H`` image
rows in chunks, and each row reads ``x_i`` and its partner ``x_j`` once and
writes every output value once. The per-element arithmetic is
``gpumix.kernels.arith``, the same functions the CUDA kernel calls.
Channels: 1 or 3 (``gpumix.mix_normalize`` checks it).

How a row is written, so that every loop vectorizes:

- A row no erasing box crosses is one loop (``_plain_row``): float32 NCHW
  with 3 channels reads the interleaved pixels and writes the three planes
  in one loop; channels_last and 1 channel walk the row's values
  contiguously. The CutMix weight is chosen per pixel.
- A row an erasing box of the sample or its partner crosses (``_row``) is
  cut into pieces at the boxes' edges and CutMix's; within a piece the
  weight is fixed and each image is either its own pixels or erased by one
  box. Each piece is one loop, specialized for what it blends (pixels and
  pixels, erased and pixels, pixels and erased, both erased); an erased
  image's value is ``color + table[start + k]``: a box color plus the
  table's zeros, or zero plus the row's run of the noise table
  (``gpumix.kernels.noise``), so one loop serves both. The 3-channel NCHW
  loops read a planar copy of the table, where each plane's run is
  contiguous (``_planar_table``). Pieces are written
  left to right and each loop runs a whole number of vector iterations
  (``_VECTOR``) past its piece, within the row: the next piece overwrites
  the overshoot, and only the last piece can end in a scalar remainder.
- The common crossed row skips the cut (``_one_box``): one box crosses it,
  of the sample or of its partner (at most one box per sample, timm's
  default), and no CutMix box, so its pieces are known: ``[0, x0)``,
  ``[x0, x1)`` erased, ``[x1, W)``, written by the same loops. Its last piece
  ends with its last 8 pixels computed again instead of a scalar remainder
  (``_last_vector``).
- Samples are written one after another in the order of ``index``'s cycles
  (``_partner_order``): each sample's partner comes next, so its pixels, just
  read as the partner, are read again from cache (L3) rather than memory.
- float32 goes straight into the output; fp16/bf16 rows are written into an
  L1-resident float32 scratch row, then rounded in one contiguous pass.
- The loops are ``njit_noalias`` functions (``gpumix.kernels.noalias``): no
  runtime overlap checks, and the vector loop from the first 8 pixels on.
  What a loop writes (the output, or the scratch row) never overlaps what
  it reads (the batch, the tables), and ``launch`` requires it of its
  caller's outputs too.
"""
import functools

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

from gpumix.kernels import arith
from gpumix.kernels import noise as noise_table
from gpumix.kernels.noalias import njit_noalias

__all__ = ["mix_normalize_cpu", "launch"]

_F32 = arith.ENC_F32
_F16 = arith.ENC_F16
_U32 = np.uint32
_U64 = np.uint64
# unsigned constants for index arithmetic: numba types uint64 + int64 as float64
_1, _2, _3 = np.uint64(1), np.uint64(2), np.uint64(3)
_3W = np.uint32(3)
# LLVM vectorizes the 3-channel loops 8 pixels at a time (AVX2, read off their machine code): a loop over a
# whole number of 8 pixels has no scalar remainder, which costs more than the vector body on a short piece.
_VECTOR = 8
# Columns of the pieces table: [lo, hi) pixels, 1 + the box that erases image i there (0: none), the same for j.
_LO, _HI, _FI, _FJ = 0, 1, 2, 3


@numba.njit(cache=True, inline="always")
def _end(lo, hi, width):
    # Where the loop of piece [lo, hi) stops: a whole number of vector iterations past lo, within the row.
    return min(lo + (hi - lo + _VECTOR - 1) // _VECTOR * _VECTOR, width)


@numba.njit(cache=True, inline="always")
def _last_vector(lo, width):
    # The last piece [lo, width) as loops without a scalar remainder: [lo, whole) in whole vector iterations,
    # then [last, width), its last _VECTOR pixels again (the same values), if any are left; last == width if
    # none are, or if the piece is shorter than a vector (then [lo, width) is one loop, remainder and all).
    whole = lo + (width - lo) // _VECTOR * _VECTOR
    if whole == lo:
        return width, width
    return whole, width - _VECTOR if whole < width else width


# ---- rows no erasing box crosses: one loop per row (or per row and plane) -----------------------------------

@njit_noalias
def _planes3(d0, d1, d2, si, sj, xs, xe, w_in, w_out, m0, m1, m2, s0, s1, s2):
    # float32 NCHW, 3 channels: pixel w's interleaved bytes 3w..3w+2 go to the three planes in one loop.
    for w in range(d0.size):
        wt = w_in if (xs <= w) & (w < xe) else w_out
        d0[w] = arith.mix_value(si[3 * w], sj[3 * w], wt, m0, s0)
        d1[w] = arith.mix_value(si[3 * w + 1], sj[3 * w + 1], wt, m1, s1)
        d2[w] = arith.mix_value(si[3 * w + 2], sj[3 * w + 2], wt, m2, s2)


@njit_noalias
def _contiguous_row(d, si, sj, ks, ke, w_in, w_out, mean_k, inv_k):
    # float32 channels_last or 1 channel: output value k is input byte k of the row.
    for k in range(d.size):
        wt = w_in if (ks <= k) & (k < ke) else w_out
        d[k] = arith.mix_value(si[k], sj[k], wt, mean_k[k], inv_k[k])


@numba.njit(cache=True, inline="always")
def _plain_row(dst, b, h, si, sj, xs, xe, w_in, w_out, mean, inv_std, mean_k, inv_k, enc, nhwc, scratch):
    """Row h of sample b when no erasing box crosses it: float32 straight into ``dst``, 16-bit through ``scratch``."""
    channels = mean.size
    width = si.size // channels
    contiguous = nhwc or channels == 1
    if enc == _F32:
        if contiguous:
            row = dst[b, h].reshape(si.size) if nhwc else dst[b, 0, h]
            _contiguous_row(row, si, sj, xs * channels, xe * channels, w_in, w_out, mean_k, inv_k)
        else:
            _planes3(dst[b, 0, h], dst[b, 1, h], dst[b, 2, h], si, sj, xs, xe, w_in, w_out, mean[0], mean[1],
                     mean[2], inv_std[0], inv_std[1], inv_std[2])
        return
    # 16-bit: the same float32 row in the L1-resident scratch, then one contiguous conversion pass
    if contiguous:
        _contiguous_row(scratch, si, sj, xs * channels, xe * channels, w_in, w_out, mean_k, inv_k)
        arith.encode_row(dst[b, h].reshape(si.size) if nhwc else dst[b, 0, h], scratch, enc)
    else:
        _planes3(scratch[:width], scratch[width:2 * width], scratch[2 * width:], si, sj, xs, xe, w_in, w_out,
                 mean[0], mean[1], mean[2], inv_std[0], inv_std[1], inv_std[2])
        for c in range(3):
            arith.encode_row(dst[b, c, h], scratch[c * width:(c + 1) * width], enc)


# ---- the loops of a crossed row's pieces (s, e: the loop's range; d[do + ...]: the destination, flat) -----------
# An erased image's value of channel c at pixel w is ``color + t[o + w * C + c]``: its box color plus zeros, or
# zero plus its run of the noise table (``_table``); the 3-plane loops read ``color + t[q_c + w]`` from the
# planar table (``_planar_table``, q_c: ``_plane_start``). The blending loops get weights strictly between 0 and 1
# (``arith.blend``); where the weight keeps one image alone, ``_pieces`` calls a pixel loop or a fill loop.

@njit_noalias
def _contiguous(d, do, si, sj, s, e, wt, mean_k, inv_k):
    # Interleaved values [s, e) (channels_last order, value k is input byte k): both images' own pixels.
    for k in range(_U32(s), _U32(e)):
        d[do + k] = arith.mix_value(si[k], sj[k], wt, mean_k[k], inv_k[k])


@njit_noalias
def _erased_i_k(d, do, t, oi, ck, co, sj, s, e, wt, mean_k, inv_k):
    # Interleaved values [s, e): image i erased (ck[co + k] + t[oi + k]), its partner's own pixels.
    for k in range(_U32(s), _U32(e)):
        d[do + k] = arith.blend(ck[co + k] + t[oi + k], arith.normalize_value(sj[k], mean_k[k], inv_k[k]), wt)


@njit_noalias
def _erased_j_k(d, do, si, t, oj, ck, co, s, e, wt, mean_k, inv_k):
    for k in range(_U32(s), _U32(e)):
        d[do + k] = arith.blend(arith.normalize_value(si[k], mean_k[k], inv_k[k]), ck[co + k] + t[oj + k], wt)


@njit_noalias
def _erased_ij_k(d, do, t, oi, ck, ci, oj, cj, s, e, wt):
    for k in range(_U32(s), _U32(e)):
        d[do + k] = arith.blend(ck[ci + k] + t[oi + k], ck[cj + k] + t[oj + k], wt)


@njit_noalias
def _fill_k(d, do, t, oi, ck, co, s, e):
    # Where the one image kept (weight 1 or 0, or the clean output) is erased: its erased values themselves.
    for k in range(_U32(s), _U32(e)):
        d[do + k] = ck[co + k] + t[oi + k]


@njit_noalias
def _mix3(d, do, plane, si, sj, s, e, wt, m0, m1, m2, v0, v1, v2):
    # NCHW, 3 channels: pixels [s, e) of the three planes (d[do + c * plane + w]) from the interleaved bytes.
    p1 = do + _U64(plane)
    p2 = p1 + _U64(plane)
    for w in range(_U32(s), _U32(e)):
        d[do + w] = arith.mix_value(si[_3W * w], sj[_3W * w], wt, m0, v0)
        d[p1 + w] = arith.mix_value(si[_3W * w + _1], sj[_3W * w + _1], wt, m1, v1)
        d[p2 + w] = arith.mix_value(si[_3W * w + _2], sj[_3W * w + _2], wt, m2, v2)


@njit_noalias
def _erased_i3(d, do, plane, t, q0, q1, q2, c0, c1, c2, sj, s, e, wt, m0, m1, m2, v0, v1, v2):
    p1 = do + _U64(plane)
    p2 = p1 + _U64(plane)
    for w in range(_U32(s), _U32(e)):
        d[do + w] = arith.blend(c0 + t[q0 + w], arith.normalize_value(sj[_3W * w], m0, v0), wt)
        d[p1 + w] = arith.blend(c1 + t[q1 + w], arith.normalize_value(sj[_3W * w + _1], m1, v1), wt)
        d[p2 + w] = arith.blend(c2 + t[q2 + w], arith.normalize_value(sj[_3W * w + _2], m2, v2), wt)


@njit_noalias
def _erased_j3(d, do, plane, si, t, q0, q1, q2, c0, c1, c2, s, e, wt, m0, m1, m2, v0, v1, v2):
    p1 = do + _U64(plane)
    p2 = p1 + _U64(plane)
    for w in range(_U32(s), _U32(e)):
        d[do + w] = arith.blend(arith.normalize_value(si[_3W * w], m0, v0), c0 + t[q0 + w], wt)
        d[p1 + w] = arith.blend(arith.normalize_value(si[_3W * w + _1], m1, v1), c1 + t[q1 + w], wt)
        d[p2 + w] = arith.blend(arith.normalize_value(si[_3W * w + _2], m2, v2), c2 + t[q2 + w], wt)


@njit_noalias
def _erased_ij3(d, do, plane, t, i0, i1, i2, a0, a1, a2, j0, j1, j2, b0, b1, b2, s, e, wt):
    p1 = do + _U64(plane)
    p2 = p1 + _U64(plane)
    for w in range(_U32(s), _U32(e)):
        d[do + w] = arith.blend(a0 + t[i0 + w], b0 + t[j0 + w], wt)
        d[p1 + w] = arith.blend(a1 + t[i1 + w], b1 + t[j1 + w], wt)
        d[p2 + w] = arith.blend(a2 + t[i2 + w], b2 + t[j2 + w], wt)


@njit_noalias
def _fill3(d, do, plane, t, q0, q1, q2, c0, c1, c2, s, e):
    p1 = do + _U64(plane)
    p2 = p1 + _U64(plane)
    for w in range(_U32(s), _U32(e)):
        d[do + w] = c0 + t[q0 + w]
        d[p1 + w] = c1 + t[q1 + w]
        d[p2 + w] = c2 + t[q2 + w]


# ---- rows an erasing box crosses ------------------------------------------------------------------------------

@numba.njit(cache=True, inline="always")
def _box_at(eboxes, b, h, w):
    # 1 + the last of sample b's erasing boxes that holds pixel (h, w) (a later box covers an earlier one), or 0.
    # The CUDA kernel has its own copy (mix_normalize_cuda._erased_box): numba's simulator passes only scalars
    # to njit functions, so one shared function could not take the boxes there.
    found = 0
    for k in range(eboxes.shape[1]):
        if eboxes[b, k, 0] <= h and h < eboxes[b, k, 2] and eboxes[b, k, 1] <= w and w < eboxes[b, k, 3]:
            found = k + 1
    return found


@numba.njit(cache=True, inline="always")
def _crosses(eboxes, s, k, h):
    # Whether erasing box k of sample s crosses row h (and is not empty).
    return eboxes[s, k, 0] <= h and h < eboxes[s, k, 2] and eboxes[s, k, 1] < eboxes[s, k, 3]


@numba.njit(cache=True, inline="always")
def _edges(cuts, n, eboxes, owner, h):
    # Append the column edges of sample `owner`'s boxes that cross row h to cuts[n:]; return the new n.
    for k in range(eboxes.shape[1]):
        if _crosses(eboxes, owner, k, h):
            cuts[n] = eboxes[owner, k, 1]
            cuts[n + 1] = eboxes[owner, k, 3]
            n += 2
    return n


@numba.njit(cache=True, inline="always")
def _cut(pieces, cuts, b, j, h, width, xs, xe, eboxes):
    """Fill ``pieces`` with row h's pieces, left to right; return how many.

    Cut at the CutMix box's edges ``xs``/``xe`` and at the edges of every
    erasing box of sample b or its partner j that crosses the row (0 and
    ``width`` bound the row). ``pieces``: int64 (4 * M + 3, 4), ``cuts``: int64 (4 * M + 4,).
    """
    cuts[0] = 0
    n = 1
    if xs < xe:
        cuts[1] = xs
        cuts[2] = xe
        n = 3
    n = _edges(cuts, n, eboxes, b, h)
    n = _edges(cuts, n, eboxes, j, h)
    cuts[n] = width
    n += 1
    for a in range(2, n - 1):  # insertion sort of the inner edges: a handful
        v = cuts[a]
        k = a - 1
        while k >= 1 and cuts[k] > v:
            cuts[k + 1] = cuts[k]
            k -= 1
        cuts[k + 1] = v
    count = 0
    for a in range(n - 1):
        lo, hi = cuts[a], cuts[a + 1]
        if lo < hi:
            pieces[count, _LO] = lo
            pieces[count, _HI] = hi
            pieces[count, _FI] = _box_at(eboxes, b, h, lo)
            pieces[count, _FJ] = _box_at(eboxes, j, h, lo)
            count += 1
    return count


@numba.njit(cache=True, inline="always")
def _plane_start(start, c, row):
    # Where channel c of a run of the interleaved table starting at `start` begins in the planar table
    # (``_planar_table``, rows of length `row`): value start + 3 * w + c is row (start + c) % 3, column
    # (start + c) // 3 + w.
    q = _U32(start + _U32(c))
    return _U32(_U32(q % _3W) * _U32(row) + _U32(q // _3W))


@numba.njit(cache=True, inline="always")
def _runs(key, h, noise, planes, table, width, span):
    """Where an image's erased values of row h are read in ``table``: ``(o, q0, q1, q2)``, uint32.

    ``o``: the run of the interleaved table (the loops over values), its
    noise under ``key``, or its zeros (box colors are ``color + 0``).
    ``q0..q2`` (``planes``): each plane's run in the planar table, or the
    zeros at the end of its first row; else 0.
    """
    o = _U32(noise_table.NOISE_SIZE + span)
    if noise:
        o = arith.noise_row(key, h)
    q0 = q1 = q2 = _U32(0)
    if planes:
        row = _U32(table.size // 3)
        q0 = q1 = q2 = _U32(row - width)
        if noise:
            q0, q1, q2 = _plane_start(o, 0, row), _plane_start(o, 1, row), _plane_start(o, 2, row)
    return o, q0, q1, q2


@numba.njit(cache=True, inline="always")
def _box_colors(ecolors, colors_k, s, f, noise, planes, span):
    """The color of sample s's erasing box ``f - 1`` as the loops read it: ``(co, c0, c1, c2)``.

    ``co``: where its channels_last row starts in ``colors_k``; ``c0..c2``:
    per channel, for the 3-plane loops (``planes``), else 0. No box (``f``
    0), pixel noise, or no rows in ``colors_k``: ``colors_k``'s last row
    (zeros) and zero colors.
    """
    co = _U64(colors_k.size - span)  # colors_k's last row: zeros
    c0 = c1 = c2 = np.float32(0.0)
    if f and not noise:
        if colors_k.size > span:
            co = _U64((s * ecolors.shape[1] + f - 1) * span)
        if planes:
            c0, c1, c2 = ecolors[s, f - 1, 0], ecolors[s, f - 1, 1], ecolors[s, f - 1, 2]
    return co, c0, c1, c2


@numba.njit(cache=True, inline="always")
def _one_box(d, do, plane, planes, si, sj, x0, x1, s, on_i, wt, mean, inv_std, mean_k, inv_k, ecolors, colors_k,
             ekeys, noise, table, h):
    """Row h when one erasing box crosses it, ``[x0, x1)`` of sample ``s``, and one weight ``wt`` holds for all of it.

    The common crossed row (mixup, or CutMix's rows outside its box), written
    without the cut: the pieces ``[0, x0)``, ``[x0, x1)`` and ``[x1, W)``, by
    the loops ``_pieces`` would call on them, so the values are the same.
    ``on_i``: the box erases image i (``si``), else its partner (``sj``).
    ``d``, ``do``, ``plane``, ``planes``: as in ``_pieces``.
    """
    channels = mean.size
    width = si.size // channels
    span = si.size
    # where the weight keeps the other image alone, the box changes nothing: a plain row
    kept = wt == np.float32(1.0) if on_i else wt == np.float32(0.0)
    ignored = wt == np.float32(0.0) if on_i else wt == np.float32(1.0)
    if ignored:
        x0 = x1 = 0
    e0, e1 = _end(0, x0, width), _end(x0, x1, width)
    o, q0, q1, q2 = _runs(ekeys[s], h, noise, planes, table, width, span)
    co, c0, c1, c2 = _box_colors(ecolors, colors_k, s, 1, noise, planes, span)
    if planes:
        m0, m1, m2, v0, v1, v2 = mean[0], mean[1], mean[2], inv_std[0], inv_std[1], inv_std[2]
        if x0 > 0:
            _mix3(d, do, plane, si, sj, 0, e0, wt, m0, m1, m2, v0, v1, v2)
        if x0 < x1:
            if kept:
                _fill3(d, do, plane, table, q0, q1, q2, c0, c1, c2, x0, e1)
            elif on_i:
                _erased_i3(d, do, plane, table, q0, q1, q2, c0, c1, c2, sj, x0, e1, wt, m0, m1, m2, v0, v1, v2)
            else:
                _erased_j3(d, do, plane, si, table, q0, q1, q2, c0, c1, c2, x0, e1, wt, m0, m1, m2, v0, v1, v2)
        if x1 < width:
            # the last piece: whole vectors, then its last 8 pixels again rather than a scalar remainder
            whole, last = _last_vector(x1, width)
            _mix3(d, do, plane, si, sj, x1, whole, wt, m0, m1, m2, v0, v1, v2)
            if last < width:
                _mix3(d, do, plane, si, sj, last, width, wt, m0, m1, m2, v0, v1, v2)
        return
    if x0 > 0:
        _contiguous(d, do, si, sj, 0, channels * e0, wt, mean_k, inv_k)
    if x0 < x1:
        if kept:
            _fill_k(d, do, table, o, colors_k, co, channels * x0, channels * e1)
        elif on_i:
            _erased_i_k(d, do, table, o, colors_k, co, sj, channels * x0, channels * e1, wt, mean_k, inv_k)
        else:
            _erased_j_k(d, do, si, table, o, colors_k, co, channels * x0, channels * e1, wt, mean_k, inv_k)
    if x1 < width:
        whole, last = _last_vector(x1, width)
        _contiguous(d, do, si, sj, channels * x1, channels * whole, wt, mean_k, inv_k)
        if last < width:
            _contiguous(d, do, si, sj, channels * last, span, wt, mean_k, inv_k)


@numba.njit(cache=True, inline="always")
def _pieces(d, do, plane, planes, pieces, count, si, sj, b, j, h, xs, xe, w_in, w_out, mean, inv_std, mean_k,
            inv_k, clean, ecolors, colors_k, ekeys, noise, table):
    """Row h's pieces, left to right, each one loop.

    ``planes`` (3 channels, NCHW): pixel w's channel c at ``d[do + c * plane
    + w]``, one loop over a piece's pixels and channels; else (channels_last,
    or 1 channel) value k of the row at ``d[do + k]``. ``clean``: sample b's
    own erased, unmixed values (weight 1, the partner ignored). ``table``:
    ``_planar_table(W)`` with ``planes``, else ``_table(W * C)``.
    """
    channels = mean.size
    width = si.size // channels
    span = si.size
    oi, i0, i1, i2 = _runs(ekeys[b], h, noise, planes, table, width, span)
    oj, j0, j1, j2 = _runs(ekeys[j], h, noise, planes, table, width, span)
    for p in range(count):
        lo, hi, fi, fj = pieces[p, _LO], pieces[p, _HI], pieces[p, _FI], pieces[p, _FJ]
        e = _end(lo, hi, width)
        # the clean row has weight 1 (the caller passes the sample's own row as sj too)
        wt = np.float32(1.0) if clean else (w_in if xs <= lo and lo < xe else w_out)
        # Weight 1 keeps image i alone and weight 0 image j alone (CutMix's pieces, the clean row): they are
        # written by loops that read only that image, so the blending loops below never select.
        one, zero = wt == np.float32(1.0), wt == np.float32(0.0)
        if one:
            fj = 0
        if zero:
            fi = 0
        # the piece's box colors, per channel (planes) or as a channels_last row of colors_k
        ci, a0, a1, a2 = _box_colors(ecolors, colors_k, b, fi, noise, planes, span)
        cj, b0, b1, b2 = _box_colors(ecolors, colors_k, j, fj, noise, planes, span)
        if (one and fi) or (zero and fj):  # the erased values of the one image kept
            if planes:
                if fi:
                    _fill3(d, do, plane, table, i0, i1, i2, a0, a1, a2, lo, e)
                else:
                    _fill3(d, do, plane, table, j0, j1, j2, b0, b1, b2, lo, e)
            elif fi:
                _fill_k(d, do, table, oi, colors_k, ci, channels * lo, channels * e)
            else:
                _fill_k(d, do, table, oj, colors_k, cj, channels * lo, channels * e)
            continue
        if planes:
            if fi == 0 and fj == 0:
                _mix3(d, do, plane, si, sj, lo, e, wt, mean[0], mean[1], mean[2], inv_std[0], inv_std[1], inv_std[2])
            elif fj == 0:
                _erased_i3(d, do, plane, table, i0, i1, i2, a0, a1, a2, sj, lo, e, wt, mean[0], mean[1], mean[2],
                           inv_std[0], inv_std[1], inv_std[2])
            elif fi == 0:
                _erased_j3(d, do, plane, si, table, j0, j1, j2, b0, b1, b2, lo, e, wt, mean[0], mean[1], mean[2],
                           inv_std[0], inv_std[1], inv_std[2])
            else:
                _erased_ij3(d, do, plane, table, i0, i1, i2, a0, a1, a2, j0, j1, j2, b0, b1, b2, lo, e, wt)
        else:
            s, e = channels * lo, channels * e
            if fi == 0 and fj == 0:
                _contiguous(d, do, si, sj, s, e, wt, mean_k, inv_k)
            elif fj == 0:
                _erased_i_k(d, do, table, oi, colors_k, ci, sj, s, e, wt, mean_k, inv_k)
            elif fi == 0:
                _erased_j_k(d, do, si, table, oj, colors_k, cj, s, e, wt, mean_k, inv_k)
            else:
                _erased_ij_k(d, do, table, oi, colors_k, ci, oj, cj, s, e, wt)


def _target(dst, scratch, first, plane, width):
    """Where a crossed row's float32 values go: ``(d, do, plane)``, as ``_pieces`` takes them.

    A float32 ``dst`` (the flat output) takes them itself, from ``first``,
    planes ``plane`` apart; a 16-bit one (its int16 view) through the
    ``scratch`` row, planes ``width`` apart, which ``_row`` then rounds into
    it. numba chooses by dst's dtype when it compiles (``_target_numba``), so
    each output dtype compiles the row's loops once, not for both targets.
    """
    if dst.dtype == np.float32:
        return dst, _U64(first), plane
    return scratch, _U64(0), width


@overload(_target, inline="always")
def _target_numba(dst, scratch, first, plane, width):
    if dst.dtype == types.float32:
        return lambda dst, scratch, first, plane, width: (dst, _U64(first), plane)
    return lambda dst, scratch, first, plane, width: (scratch, _U64(0), width)


@numba.njit(cache=True, inline="always")
def _write(d, do, plane, planes, pieces, cuts, si, sj, b, j, h, xs, xe, w_in, w_out, mean, inv_std, mean_k, inv_k,
           clean, eboxes, ecolors, colors_k, ekeys, noise, table):
    # A crossed row's values into d (``_pieces``' d, do, plane, planes): the common row (one box crosses it, of
    # the sample or its partner, at most one box per sample, no CutMix box) without the cut, any other by its pieces.
    on_i = on_j = False
    if not clean and eboxes.shape[1] == 1 and xe <= xs:
        on_i, on_j = _crosses(eboxes, b, 0, h), _crosses(eboxes, j, 0, h)
    if on_i != on_j:
        s = b if on_i else j
        _one_box(d, do, plane, planes, si, sj, eboxes[s, 0, 1], eboxes[s, 0, 3], s, on_i, w_out, mean, inv_std,
                 mean_k, inv_k, ecolors, colors_k, ekeys, noise, table, h)
        return
    count = _cut(pieces, cuts, b, j, h, si.size // mean.size, xs, xe, eboxes)
    _pieces(d, do, plane, planes, pieces, count, si, sj, b, j, h, xs, xe, w_in, w_out, mean, inv_std, mean_k, inv_k,
            clean, ecolors, colors_k, ekeys, noise, table)


@numba.njit(cache=True, inline="always")
def _row(dst, b, j, h, height, si, sj, xs, xe, w_in, w_out, mean, inv_std, mean_k, inv_k, enc, nhwc, clean,
         eboxes, ecolors, colors_k, ekeys, noise, table, work):
    """Row h of sample b (partner j), which an erasing box of b or j crosses, into ``dst``.

    ``dst``: the flat (B,C,H,W) output (or (B,H,W,C) if ``nhwc``). ``clean``:
    the sample's own erased, unmixed row instead. ``work``: the chunk's
    scratch (pieces, cuts, float row).
    """
    pieces, cuts, scratch = work
    channels = mean.size
    width = si.size // channels
    span = si.size
    planes = channels == 3 and not nhwc
    first = _U64((b * 3 * height + h) * width) if planes else _U64((b * height + h) * span)
    d, do, plane = _target(dst, scratch, first, height * width, width)
    _write(d, do, plane, planes, pieces, cuts, si, sj, b, j, h, xs, xe, w_in, w_out, mean, inv_std, mean_k, inv_k,
           clean, eboxes, ecolors, colors_k, ekeys, noise, table)
    if enc == _F32:
        return
    if planes:
        for c in range(3):
            start = ((b * 3 + c) * height + h) * width
            arith.encode_row(dst[start:start + width], scratch[c * width:(c + 1) * width], enc)
    else:
        start = (b * height + h) * span
        arith.encode_row(dst[start:start + span], scratch, enc)


@numba.njit(cache=True)
def _partner_order(index):
    """int64 (B,): every sample once, each followed by its partner ``index[b]`` along the cycles of ``index``.

    Sample b's rows read images b and ``index[b]``; written in this order, the
    next sample's rows read ``index[b]`` again while it is still in cache.
    Any ``index`` with values in [0, B) gives every sample exactly once.
    """
    n = index.size
    order = np.zeros(n, np.int64)  # not np.empty: a slot a bug left unfilled repeats sample 0, it cannot hide
    seen = np.zeros(n, np.bool_)
    p = 0
    for first in range(n):
        s = first
        while not seen[s]:
            seen[s] = True
            order[p] = s
            p += 1
            s = index[s]
    return order


@numba.njit(parallel=True, cache=True)
def mix_normalize_cpu(batch, labels, lam, index, boxes, mean, inv_std, eps, enc,
                      out, targets, clean, with_clean, nhwc, chunks, eboxes, ecolors, colors_k, ekeys, noise, table):
    """batch (B,H,W,C) uint8, C 1 or 3; out/clean (B,C,H,W), or (B,H,W,C) if nhwc; targets (B,K) float32; all
    contiguous.

    eboxes (B,M,4) int32, ecolors (B,M,C) float32, ekeys (B,) int64: random
    erasing (M = 0: none), by box color or, with ``noise``, by the pixel
    noise. table: ``_table(W * C)``, the noise table padded by W * C of its
    values, then W * C zeros (box colors are ``color + 0``); for 3-channel
    NCHW outputs ``_planar_table(W)``, the same values by plane. colors_k: flat
    float32, the box colors as channels_last rows (``(B*M + 1, W*C)``, the last
    row zeros), or only that zero row where the channels_last loops need no
    box colors.
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
    # the rows [first, last) each sample's non-empty boxes span ([H, 0) for none): rows outside skip the box tests
    erows = np.empty((n_batch, 2), np.int64)
    for b in range(n_batch):
        erows[b, 0], erows[b, 1] = height, 0
        for k in range(eboxes.shape[1]):
            y0, x0, y1, x1 = eboxes[b, k, 0], eboxes[b, k, 1], eboxes[b, k, 2], eboxes[b, k, 3]
            if y0 < y1 and x0 < x1:
                erows[b, 0] = min(erows[b, 0], y0)
                erows[b, 1] = max(erows[b, 1], y1)
    order = _partner_order(index)
    rows = n_batch * height
    chunks = min(rows, chunks)
    flat_out, flat_clean = out.reshape(out.size), clean.reshape(clean.size)
    for chunk in numba.prange(chunks):
        # one set of scratch per chunk of rows, not per row
        work = (np.empty((4 * eboxes.shape[1] + 3, 4), np.int64), np.empty(4 * eboxes.shape[1] + 4, np.int64),
                np.empty(span, np.float32))
        for row in range(chunk * rows // chunks, (chunk + 1) * rows // chunks):
            p = row // height
            h = row - p * height
            b = order[p]
            j = index[b]
            xs, xe, w_in, w_out = arith.row_weights(lam[b], boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3], h)
            src_i = pixels[b, h]
            src_j = pixels[j, h]
            crossed_i = erows[b, 0] <= h and h < erows[b, 1]
            crossed = crossed_i or (erows[j, 0] <= h and h < erows[j, 1])
            one = np.float32(1.0)
            if crossed:
                _row(flat_out, b, j, h, height, src_i, src_j, xs, xe, w_in, w_out, mean, inv_std, mean_k, inv_k,
                     enc, nhwc, False, eboxes, ecolors, colors_k, ekeys, noise, table, work)
            else:
                _plain_row(out, b, h, src_i, src_j, xs, xe, w_in, w_out, mean, inv_std, mean_k, inv_k, enc, nhwc,
                           work[2])
            if with_clean:  # the clean row: the sample's own pixels, erased by its own boxes only
                if crossed_i:
                    _row(flat_clean, b, b, h, height, src_i, src_i, xs, xs, one, one, mean, inv_std, mean_k, inv_k,
                         enc, nhwc, True, eboxes, ecolors, colors_k, ekeys, noise, table, work)
                else:
                    _plain_row(clean, b, h, src_i, src_i, 0, 0, one, one, mean, inv_std, mean_k, inv_k, enc, nhwc,
                               work[2])
    for b in numba.prange(n_batch):
        yi = labels[b]
        yj = labels[index[b]]
        for k in range(num_classes):
            targets[b, k] = arith.soft_target(k, yi, yj, lam[b], eps, num_classes)


@functools.lru_cache(maxsize=8)
def _table(span):
    # The erased values' table for rows of `span` values: the noise table, its first `span` values again (a
    # row's run of noise starting anywhere is one contiguous slice), then `span` zeros, the "run" under a box color.
    table = np.concatenate([noise_table.padded_table(span), np.zeros(span, np.float32)])
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=8)
def _planar_table(width):
    # The erased values' table of the 3-channel NCHW loops, which read one plane at a time: the values of
    # ``_table(3 * width)`` at 3 * i + r as row r (r = 0, 1, 2), each row then `width` zeros, flat. A plane's run
    # is then contiguous (``_plane_start``) where the interleaved table has it at a stride of 3: the same values,
    # read without the shuffles that gather a stride.
    length = (noise_table.NOISE_SIZE + 1) // 3 + width  # (start + c) // 3 + w < length for start < NOISE_SIZE
    values = np.concatenate([noise_table.padded_table(3 * width), np.zeros(3, np.float32)])[:3 * length]
    rows = np.concatenate([values.reshape(length, 3).T, np.zeros((3, width), np.float32)], axis=1)
    table = np.ascontiguousarray(rows).reshape(-1)
    table.flags.writeable = False
    return table


def _colors_k(colors, noise, channels_last_loops, width):
    # The box colors as channels_last rows for the channels_last loops (B*M rows, then a zero row), or only
    # the zero row where those loops need none (pixel noise, or the 3-channel NCHW loops, which take them as
    # scalars): a flat float32 array.
    n, m, channels = colors.shape
    zero = np.zeros(width * channels, np.float32)
    if noise or not channels_last_loops or m == 0:
        return zero
    return np.concatenate([np.tile(colors, (1, 1, width)).reshape(-1), zero])


def launch(batch, labels, lam, index, boxes, mean, inv_std, eps, enc, out, targets, clean=None, erasing=None):
    """Run the CPU twin on CPU torch tensors; same contract as ``mix_normalize_cuda.launch``.

    batch (B,H,W,C) uint8 contiguous; labels (B,) int64; lam (B,) float32;
    index (B,) int64; boxes (B,4) int32; mean and inv_std C floats (a sequence or a CPU tensor).
    ``out``/``clean`` have logical shape (B,C,H,W), contiguous NCHW or
    channels_last, float32 or an int16 view for fp16/bf16; targets (B,K)
    float32. erasing: None or ``(boxes, colors, keys, noise)`` (``gpumix.ErasingParams``' fields).
    Writes only the outputs, which must not overlap any input or each other (the loops are compiled on that
    promise: ``gpumix.kernels.noalias``).
    """
    with_clean = clean is not None
    # The kernel gets every output as a contiguous array: channels_last ones as their NHWC permutation.
    nhwc = out.shape[1] > 1 and out.stride(1) == 1

    def kernel_layout(t):
        return (t.permute(0, 2, 3, 1) if nhwc else t).numpy()

    arrays = [t.numpy() for t in (batch, labels, lam, index, boxes)]
    arrays += [np.asarray(mean, dtype=np.float32), np.asarray(inv_std, dtype=np.float32)]
    outputs = [kernel_layout(out), targets.numpy(), kernel_layout(clean if with_clean else out)]
    n, _, width, channels = batch.shape
    planes = channels == 3 and not nhwc  # the 3-plane loops: box colors as scalars, the planar noise table
    if erasing is None:
        erase = (np.zeros((n, 0, 4), np.int32), np.zeros((n, 0, channels), np.float32), np.zeros(n, np.int64), False)
    else:
        erase = tuple(t.contiguous().numpy() for t in erasing[:3]) + (bool(erasing[3]),)
    colors_k = _colors_k(erase[1], erase[3], not planes, width)
    # The chunks go to whichever thread is free (numba's default splits them evenly in advance): rows that
    # erasing crosses take longer, and they are not spread evenly over the batch.
    previous = numba.get_parallel_chunksize()
    numba.set_parallel_chunksize(1)
    try:
        # 8 chunks of rows per thread: even shares when rows take unequal time (CutMix rows, erased rows)
        mix_normalize_cpu(*arrays, np.float32(eps), enc, *outputs, with_clean, nhwc, 8 * numba.get_num_threads(),
                          erase[0], erase[1], colors_k, erase[2], erase[3],
                          _planar_table(width) if planes else _table(width * channels))
    finally:
        numba.set_parallel_chunksize(previous)
