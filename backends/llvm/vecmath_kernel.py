"""Standalone JIT-compiled elementwise kernels around `math_function`, for tests and benchmarks.

`MathKernels(elem)` builds `void kernel_<name>(i64 n, T* out, T* in...)` for every vecmath
function (a loop at the host vector width, then a scalar tail; optionally scalar-only twins),
optimises at O3 for the host and returns numpy-callable wrappers.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import llvmlite.binding as llvm
import numpy as np
from archir.backends.llvm.ir_loops import I64, VOID, counted_loop
from archir.backends.llvm.target import create_module, host_target
from archir.backends.llvm.vecmath import FUNCTIONS, math_function
from llvmlite import ir

Kernel = Callable[..., np.ndarray]
SCALAR_SUFFIX = "_scalar"


def build_elementwise_kernel(module: ir.Module, name: str, elem: ir.Type, width: int, symbol: str) -> None:
    """Define `symbol`: out[i] = name(in0[i], ...) for i < n, `width` lanes at a time, then scalars."""
    arity = FUNCTIONS[name][1]
    ptr = elem.as_pointer()
    fn = ir.Function(module, ir.FunctionType(VOID, [I64, ptr, *[ptr] * arity]), symbol)
    n, out, *ins = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    vec_end: ir.Value = I64(0)
    if width > 1:
        vec = ir.VectorType(elem, width)
        vec_fn = math_function(module, name, vec)
        vec_end = b.mul(b.sdiv(n, I64(width)), I64(width))
        with counted_loop(b, 0, vec_end, step=width) as i:
            args = []
            for src in ins:
                load = b.load(b.bitcast(b.gep(src, [i]), vec.as_pointer()))
                load.align = 4
                args.append(load)
            store = b.store(b.call(vec_fn, args), b.bitcast(b.gep(out, [i]), vec.as_pointer()))
            store.align = 4
    scalar_fn = math_function(module, name, elem)
    with counted_loop(b, vec_end, n) as i:
        b.store(b.call(scalar_fn, [b.load(b.gep(src, [i])) for src in ins]), b.gep(out, [i]))
    b.ret_void()


class MathKernels:
    """Every vecmath function for one element type, JIT-loaded (keep the object alive)."""

    def __init__(self, elem: ir.Type, *, with_scalar: bool = False) -> None:
        target = host_target()
        self.dtype: type = np.float64 if isinstance(elem, ir.DoubleType) else np.float32
        width = target.vector_width_f64 if self.dtype == np.float64 else target.vector_width_f32
        module = create_module(f"vecmath_kernels_{self.dtype.__name__}")
        for name in FUNCTIONS:
            build_elementwise_kernel(module, name, elem, width, f"kernel_{name}")
            if with_scalar:
                build_elementwise_kernel(module, name, elem, 1, f"kernel_{name}{SCALAR_SUFFIX}")
        parsed = llvm.parse_assembly(str(module))
        parsed.verify()
        tm = target.target_machine(opt=3)
        # The kernels are vectorised by hand; the scalar twins must stay scalar.
        tuning = llvm.PipelineTuningOptions(speed_level=3)
        tuning.loop_vectorization = False
        tuning.slp_vectorization = False
        passes = llvm.create_pass_builder(tm, tuning)
        passes.getModulePassManager().run(parsed, passes)
        self.asm: str = tm.emit_assembly(parsed)
        self._engine = llvm.create_mcjit_compiler(parsed, tm)
        self._engine.finalize_object()

    def kernel(self, name: str, scalar: bool = False) -> Kernel:
        """name(*arrays) -> new array; `scalar` picks the scalar-only twin."""
        arity = FUNCTIONS[name][1]
        address = self._engine.get_function_address(f"kernel_{name}{SCALAR_SUFFIX if scalar else ''}")
        cfunc = ctypes.CFUNCTYPE(None, ctypes.c_int64, *[ctypes.c_void_p] * (arity + 1))(address)
        dtype = self.dtype

        def call(*xs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
            arrays = [np.ascontiguousarray(x, dtype=dtype) for x in xs]
            result = np.empty_like(arrays[0]) if out is None else out
            for array in (*arrays, result):
                if array.shape != arrays[0].shape or not array.flags.c_contiguous or array.dtype != dtype:
                    raise ValueError(f"{name}: arrays must be contiguous {dtype.__name__} of one shape")
            cfunc(result.size, result.ctypes.data, *[a.ctypes.data for a in arrays])
            return result

        return call
