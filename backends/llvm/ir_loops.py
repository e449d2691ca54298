"""Small building blocks for hand-written llvmlite IR: counted loops, min/max, aligned allocas.

Used by the GEMM kernels and the thread-pool runtime, whose IR is written directly rather than
lowered from the loop IR.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from llvmlite import ir

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
VOID = ir.VoidType()
F32_PTR = F32.as_pointer()
I8_PTR = I8.as_pointer()


def i64(value: int) -> ir.Constant:
    return ir.Constant(I64, value)


def i32(value: int) -> ir.Constant:
    return ir.Constant(I32, value)


@contextmanager
def counted_loop(
    builder: ir.IRBuilder, start: ir.Value | int, stop: ir.Value | int, step: int = 1, name: str = "i"
) -> Iterator[ir.Value]:
    """`for (i = start; i < stop; i += step)` with signed i64 bounds; the body is the with-block."""
    start_v = i64(start) if isinstance(start, int) else start
    stop_v = i64(stop) if isinstance(stop, int) else stop
    entry = builder.block
    header = builder.append_basic_block(f"{name}.head")
    body = builder.append_basic_block(f"{name}.body")
    exit_ = builder.append_basic_block(f"{name}.end")
    builder.branch(header)
    builder.position_at_end(header)
    index = builder.phi(I64, name=name)
    index.add_incoming(start_v, entry)
    builder.cbranch(builder.icmp_signed("<", index, stop_v), body, exit_)
    builder.position_at_end(body)
    yield index
    # The body may have created blocks of its own: the back edge leaves from wherever it ended.
    if not builder.block.is_terminated:
        nxt = builder.add(index, i64(step), name=f"{name}.next")
        index.add_incoming(nxt, builder.block)
        builder.branch(header)
    builder.position_at_end(exit_)


def smin(builder: ir.IRBuilder, a: ir.Value, b: ir.Value) -> ir.Value:
    return builder.select(builder.icmp_signed("<", a, b), a, b)


def smax(builder: ir.IRBuilder, a: ir.Value, b: ir.Value) -> ir.Value:
    return builder.select(builder.icmp_signed(">", a, b), a, b)


def ceil_div(builder: ir.IRBuilder, a: ir.Value, b: int | ir.Value) -> ir.Value:
    b_v = i64(b) if isinstance(b, int) else b
    return builder.sdiv(builder.add(a, builder.sub(b_v, i64(1))), b_v)


def entry_alloca(builder: ir.IRBuilder, ty: ir.Type, count: int = 1, align: int = 64,
                 name: str = "") -> ir.Value:
    """An alloca in the function's entry block (so loops do not grow the stack), aligned."""
    fn_entry = builder.function.entry_basic_block
    saved = builder.block
    if fn_entry.instructions:
        builder.position_before(fn_entry.instructions[0])
    else:
        builder.position_at_end(fn_entry)
    slot = builder.alloca(ty, size=i64(count) if count != 1 else None, name=name)
    slot.align = align
    builder.position_at_end(saved)
    return slot


def splat(builder: ir.IRBuilder, scalar: ir.Value, width: int) -> ir.Value:
    """A vector of `width` copies of `scalar` (insertelement + zero shuffle: LLVM's broadcast idiom)."""
    vec_ty = ir.VectorType(scalar.type, width)
    one = builder.insert_element(ir.Constant(vec_ty, ir.Undefined), scalar, i32(0))
    return builder.shuffle_vector(one, ir.Constant(vec_ty, ir.Undefined),
                                  ir.Constant(ir.VectorType(I32, width), [0] * width))


def lane_mask(builder: ir.IRBuilder, lanes: ir.Value, width: int) -> ir.Value:
    """<width x i1> with lane j set iff j < lanes (lanes is i64)."""
    iota = ir.Constant(ir.VectorType(I64, width), list(range(width)))
    return builder.icmp_signed("<", iota, splat(builder, lanes, width))
