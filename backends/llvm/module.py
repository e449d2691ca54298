"""The llvm backend's compiled module: one native entry point per graph, called once per run.

Arguments are checked (archir.signature) before the call; outputs are numpy arrays allocated
here, temporaries live in one arena cached per set of run-time dims, weights are passed by
pointer (never baked into code), so the object code is cached on disk by graph text alone.
"""

from __future__ import annotations

import ctypes
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from archir.backends.llvm import build, cache
from archir.backends.llvm.codegen import ALIGN
from archir.backends.llvm.loops import Program

from archir.backend import CompiledModule, CompileReport, register_backend
from archir.errors import ArchirError, BackendError
from archir.ir import Graph
from archir.printer import print_graph
from archir.symbolic import Dim, add, dim_str, evaluate, mul, parse_dim
from archir.types import DType, TensorType

# ctypes lets go of the GIL during a native call, so two Python threads could be inside native
# code at once; the call frames (pointer table, arena) and the process' one thread pool are not
# made for that, so native calls take turns. Costs ~0.1 µs a call.
_NATIVE_CALL = threading.Lock()
_ENTRY_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p),
                               ctypes.POINTER(ctypes.c_int64))


@dataclass(slots=True)
class NativeLayout:
    """What the Python side must know of the native code: dims order, arena, error messages."""

    symbols: list[str]
    temps: list[tuple[DType, Dim]]
    errors: list[str]

    @staticmethod
    def of(program: Program) -> NativeLayout:
        return NativeLayout(list(program.symbols), [(t.dtype, t.size) for t in program.temps],
                            list(program.errors))

    def to_json(self) -> dict[str, Any]:
        return {"symbols": self.symbols, "errors": self.errors,
                "temps": [[d.value, str(s)] for d, s in self.temps]}

    @staticmethod
    def from_json(data: dict[str, Any]) -> NativeLayout:
        temps = [(DType(d), parse_dim(s)) for d, s in data["temps"]]
        return NativeLayout(list(data["symbols"]), temps, list(data["errors"]))

    def arena_formula(self) -> Dim:
        """The arena's bytes as an expression of the run-time dims (each temp rounded up to ALIGN
        only when its size is static, so the formula is a lower bound by < ALIGN per temp)."""
        total: Dim = 0
        for dtype, size in self.temps:
            total = add(total, mul(size, dtype.itemsize))
        return total

    def largest_temp(self) -> tuple[DType, Dim] | None:
        """The temp with the most bytes at size 64 for every dim (a stand-in for "large")."""
        probe = {s: 64 for s in self.symbols}
        return max(self.temps, key=lambda t: evaluate(t[1], probe) * t[0].itemsize, default=None)

    def describe_arena(self) -> str:
        largest = self.largest_temp()
        biggest = "" if largest is None else f"; largest temp {largest[0]}[{dim_str(largest[1])}]"
        return f"arena: {len(self.temps)} temps, {dim_str(self.arena_formula())} bytes{biggest}"

    def arena_bytes(self, bindings: dict[str, int]) -> int:
        total = 0
        for dtype, size in self.temps:
            total += (evaluate(size, bindings) * dtype.itemsize + ALIGN - 1) // ALIGN * ALIGN
        return total


@dataclass(slots=True)
class _CallFrame:
    arena: np.ndarray
    shapes: list[tuple[tuple[int, ...], np.dtype]]
    pointers: Any  # ctypes array of void*: inputs, params, outputs, arena
    dims: Any  # ctypes array of int64
    first_output: int


class LLVMModule(CompiledModule):
    """A graph compiled to native code for this CPU."""

    def __init__(self, graph: Graph, code: bytes, layout: NativeLayout, *, key: str,
                 options: dict[str, Any], report: CompileReport) -> None:
        super().__init__(graph, report)
        missing = [p.name for p in graph.params if p.name not in graph.param_data]
        if missing:
            raise BackendError(f"parameters without data: {', '.join(missing)}",
                               hint="load or initialise the weights before compiling")
        self.code = code
        self.layout = layout
        self.key = key
        self.options = options
        self._loaded = build.load_object(code)
        self._entry = _ENTRY_TYPE(self._loaded.address)
        weakref.finalize(self, _release_packed_weights, self._loaded)  # weights packed on first use
        self.params = [np.ascontiguousarray(graph.param_data[p.name]) for p in graph.params]
        self._frames: dict[tuple[int, ...], _CallFrame] = {}

    def _call_frame(self, dims: tuple[int, ...], bindings: dict[str, int]) -> _CallFrame:
        """Per set of dim sizes: output shapes, the arena, and the argument array with the param
        and arena pointers already filled in (a call only writes inputs and outputs)."""
        frame = self._frames.get(dims)
        if frame is None:
            arena = np.empty(self.layout.arena_bytes(bindings) + ALIGN, np.uint8)
            address = arena.ctypes.data
            shapes = []
            for v in self.graph.outputs:
                t = v.type
                assert isinstance(t, TensorType)
                shapes.append((t.concrete_shape(bindings), t.dtype.numpy))
            n_in = len(self.graph.inputs)
            pointers = (ctypes.c_void_p * (n_in + len(self.params) + len(shapes) + 1))()
            for i, p in enumerate(self.params):
                pointers[n_in + i] = p.ctypes.data
            pointers[len(pointers) - 1] = address + (-address) % ALIGN
            dims_array = (ctypes.c_int64 * max(1, len(dims)))(*dims)
            frame = _CallFrame(arena, shapes, pointers, dims_array, n_in + len(self.params))
            self._frames[dims] = frame
        return frame

    def run(self, arrays: list[Any], bindings: dict[str, int]) -> list[Any]:
        # The hot path of small graphs called in a loop: plain loops, no per-call allocations
        # beyond the outputs (the pointer table, dims and arena live in the per-size frame).
        symbols = self.layout.symbols
        dims = tuple([bindings[s] for s in symbols]) if symbols else ()
        as_torch = False
        copies = []  # numpy views and contiguous copies must outlive the native call
        for a in arrays:
            if type(a) is not np.ndarray:
                as_torch = True
                a = _numpy(a)
            copies.append(a if a.flags.c_contiguous else np.ascontiguousarray(a))
        with _NATIVE_CALL:
            frame = self._frames.get(dims) or self._call_frame(dims, bindings)
            pointers = frame.pointers
            for i, a in enumerate(copies):
                pointers[i] = _address(a)
            outputs = []
            first = frame.first_output
            for i, (shape, dtype) in enumerate(frame.shapes):
                o = np.empty(shape, dtype)
                pointers[first + i] = _address(o)
                outputs.append(o)
            status = self._entry(pointers, frame.dims)
        del copies
        if status:
            raise ArchirError(self.layout.errors[status - 1])
        if as_torch:
            import torch

            return [torch.from_numpy(o) for o in outputs]
        return outputs

    def write_artifact(self, directory: Any) -> list[Any]:
        from archir.backends.llvm.artifact import write_artifact

        return write_artifact(self, directory)


def _release_packed_weights(loaded: build.LoadedCode) -> None:
    """Free the weights the native code packed for its GEMMs (object code without them has no
    release function)."""
    from archir.backends.llvm.gemm_prepack import RELEASE

    address = loaded.engine.get_function_address(RELEASE)
    if address:
        ctypes.CFUNCTYPE(None)(address)()


def _address(a: np.ndarray) -> int:
    """The data pointer of a contiguous array; `ctypes.c_char.from_buffer` is several times cheaper
    than `a.ctypes.data`, which matters for small graphs called in a loop. Read-only and empty
    arrays take the slower way."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def _numpy(a: Any) -> np.ndarray:
    if isinstance(a, np.ndarray):
        return a
    tensor = a.detach().cpu()
    if str(tensor.dtype) == "torch.bfloat16":
        import ml_dtypes
        import torch

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def compile_llvm(graph: Graph, *, opt: int = 3, use_cache: bool = True, **_: Any) -> LLVMModule:
    """Compile `graph` for this CPU (or load it from the disk cache)."""
    started = time.perf_counter()
    options = {"opt": opt}
    key = cache.cache_key(print_graph(graph), options)
    hit = cache.load(key) if use_cache else None
    if hit is not None:
        layout, code = NativeLayout.from_json(hit[0]), hit[1]
        note = "object code: disk cache hit"
    else:
        layout, code = _compile(graph, opt)
        if use_cache:
            cache.store(key, layout.to_json(), code)
        note = "object code: compiled"
    report = CompileReport("llvm", kernels=1, extern_calls=[], notes=[note])
    module = LLVMModule(graph, code, layout, key=key, options=options, report=report)
    report.arena_bytes = 0 if layout.symbols else layout.arena_bytes({})  # symbolic: see the note
    report.notes.append(layout.describe_arena())
    report.notes.append(f"compile time: {time.perf_counter() - started:.3f} s")
    return module


def _compile(graph: Graph, opt: int) -> tuple[NativeLayout, bytes]:
    from archir.backends.llvm.lower import lower_graph

    try:
        program = lower_graph(graph)
        optimised = build.optimise(build.llvm_module(program), opt)
    except ArchirError:
        raise
    except Exception as err:  # a bug in this backend: say so with the graph it happened on
        what = f"{type(err).__name__}: {err}"
        raise BackendError(f"llvm backend failed on graph @{graph.name}: {what}") from err
    return NativeLayout.of(program), build.emit_object(optimised, opt)


register_backend("llvm", compile_llvm)
