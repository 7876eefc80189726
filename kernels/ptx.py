"""PTX instructions the fused CUDA kernel needs and numba does not emit on its own.

- ``store_f32x4`` / ``store_u32x2``: one 16-byte ``st.global.v4.f32`` or 8-byte
  ``st.global.v2.b32``, so a thread writes its four pixels in one store per plane.
- ``cvt_f16x2`` / ``cvt_bf16x2``: round two float32 values to nearest even and
  pack them into one 32-bit word (``cvt.rn.f16x2.f32``, ``cvt.rn.bf16x2.f32``,
  sm_80 and newer): one instruction where the software path takes 16 (bf16) to
  55 (fp16) per value. The upper half holds the first argument.
- ``cvt_f16`` / ``cvt_bf16``: the same for one value, as a 16-bit integer.

Under ``NUMBA_ENABLE_CUDASIM=1`` each name is a plain Python device function
with the same meaning (the conversions use ``gpumix.kernels.arith``'s
software rounding), so the kernel source that calls them runs unchanged in the
simulator. ``sw_pack_f16x2`` / ``sw_pack_bf16x2`` / ``sw_f16`` / ``sw_bf16``
are the software roundings, used by the simulator and by GPUs older than
sm_80; a real-GPU test checks them bit for bit against the hardware
instructions.

The stores write through the array's data pointer with no bounds check: the
caller guarantees that ``i`` is in range and that element ``i`` is 16-byte
(``store_f32x4``) or 8-byte (``store_u32x2``) aligned.
"""
import numpy as np
from numba import config, cuda

from gpumix.kernels import arith

__all__ = ["store_f32x4", "store_u32x2", "cvt_f16x2", "cvt_bf16x2", "cvt_f16", "cvt_bf16", "sw_pack_f16x2",
           "sw_pack_bf16x2", "sw_f16", "sw_bf16"]


@cuda.jit(device=True)
def sw_pack_f16x2(hi, lo):
    """fp16 bits of ``hi`` (upper half) and ``lo`` (lower half), rounded to nearest even in software."""
    return np.uint32(((arith.f32_to_f16_bits(hi) & 0xFFFF) << 16) | (arith.f32_to_f16_bits(lo) & 0xFFFF))


@cuda.jit(device=True)
def sw_pack_bf16x2(hi, lo):
    """bf16 bits of ``hi`` (upper half) and ``lo`` (lower half), rounded to nearest even in software."""
    return np.uint32(((arith.f32_to_bf16_bits(hi) & 0xFFFF) << 16) | (arith.f32_to_bf16_bits(lo) & 0xFFFF))


@cuda.jit(device=True)
def sw_f16(v):
    """fp16 bits of ``v`` as uint16, rounded to nearest even in software."""
    return np.uint16(arith.f32_to_f16_bits(v) & 0xFFFF)


@cuda.jit(device=True)
def sw_bf16(v):
    """bf16 bits of ``v`` as uint16, rounded to nearest even in software."""
    return np.uint16(arith.f32_to_bf16_bits(v) & 0xFFFF)


if config.ENABLE_CUDASIM:  # type: ignore[attr-defined]  # numba sets its config attributes at run time
    @cuda.jit(device=True)
    def store_f32x4(arr, i, a, b, c, d):
        arr[i] = a
        arr[i + 1] = b
        arr[i + 2] = c
        arr[i + 3] = d

    @cuda.jit(device=True)
    def store_u32x2(arr, i, a, b):
        arr[i] = a
        arr[i + 1] = b

    cvt_f16x2 = sw_pack_f16x2
    cvt_bf16x2 = sw_pack_bf16x2
    cvt_f16 = sw_f16
    cvt_bf16 = sw_bf16

else:
    from llvmlite import ir
    from numba import types
    from numba.cuda.extending import intrinsic

    def _pointer(context, builder, array_type, array, index_type, index):
        # &array[index] of a 1-D C-contiguous array, with no bounds check (the caller guarantees it).
        data = context.make_array(array_type)(context, builder, value=array).data
        return builder.gep(data, [context.cast(builder, index, index_type, types.intp)])

    def _store_vector(width, element, constraint, ptx_type):
        def typer(typingctx, array, index, *values):
            if not isinstance(array, types.Array) or array.ndim != 1 or array.dtype != element:
                raise TypeError(f"expected a 1-D {element} array, got {array}")
            if len(values) != width:
                raise TypeError(f"expected {width} values, got {len(values)}")

            def codegen(context, builder, sig, args):
                ptr = _pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
                elem = context.get_value_type(element)
                vals = [context.cast(builder, v, t, element) for v, t in zip(args[2:], sig.args[2:])]
                regs = ", ".join(f"${k + 1}" for k in range(width))
                fnty = ir.FunctionType(ir.VoidType(), [ptr.type] + [elem] * width)
                asm = ir.InlineAsm(fnty, f"st.global.v{width}.{ptx_type} [$0], {{{regs}}};",
                                   "l" + f",{constraint}" * width + ",~{memory}", side_effect=True)
                builder.call(asm, [ptr] + vals)

            return types.void(array, index, *values), codegen
        return typer

    @intrinsic
    def store_f32x4(typingctx, array, index, a, b, c, d):
        return _store_vector(4, types.float32, "f", "f32")(typingctx, array, index, a, b, c, d)

    @intrinsic
    def store_u32x2(typingctx, array, index, a, b):
        return _store_vector(2, types.uint32, "r", "b32")(typingctx, array, index, a, b)

    def _convert_pair(ptx_type):
        def typer(typingctx, hi, lo):
            def codegen(context, builder, sig, args):
                f32 = ir.FloatType()
                vals = [context.cast(builder, v, t, types.float32) for v, t in zip(args, sig.args)]
                fnty = ir.FunctionType(ir.IntType(32), [f32, f32])
                return builder.call(ir.InlineAsm(fnty, f"cvt.rn.{ptx_type}x2.f32 $0, $1, $2;", "=r,f,f"), vals)

            return types.uint32(hi, lo), codegen
        return typer

    def _convert_one(ptx_type):
        def typer(typingctx, value):
            def codegen(context, builder, sig, args):
                val = context.cast(builder, args[0], sig.args[0], types.float32)
                fnty = ir.FunctionType(ir.IntType(16), [ir.FloatType()])
                return builder.call(ir.InlineAsm(fnty, f"cvt.rn.{ptx_type}.f32 $0, $1;", "=h,f"), [val])

            return types.uint16(value), codegen
        return typer

    @intrinsic
    def cvt_f16x2(typingctx, hi, lo):
        return _convert_pair("f16")(typingctx, hi, lo)

    @intrinsic
    def cvt_bf16x2(typingctx, hi, lo):
        return _convert_pair("bf16")(typingctx, hi, lo)

    @intrinsic
    def cvt_f16(typingctx, value):
        return _convert_one("f16")(typingctx, value)

    @intrinsic
    def cvt_bf16(typingctx, value):
        return _convert_one("bf16")(typingctx, value)
