"""From a loop-IR program to optimised object code for the host, and from object code to a
callable entry point (MCJIT with the object file added, linked against the thread pool).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import llvmlite.binding as llvm
from archir.backends.llvm.codegen import ENTRY, generate
from archir.backends.llvm.loops import Program
from archir.backends.llvm.target import create_module, host_target
from llvmlite import ir


def externals(module: ir.Module, name: str) -> ir.Function:
    """Runtime functions that loop-IR `Call`s name."""
    if name.startswith("gemm") and name.endswith("}"):  # `gemm{epilogue}`, `gemm_param.<key>{...}`, ...
        from archir.backends.llvm.gemm_epilogue import epilogue_gemm

        return epilogue_gemm(module, name)
    if name == "gemm":
        return _gemm_once(module, "archir_gemm")
    if name.startswith("gemm_conv."):  # B is an image read through a conv window (implicit GEMM)
        from archir.backends.llvm.gemm_conv import ConvGeometry

        return _gemm_once(module, f"archir_{name}", conv=ConvGeometry.parse(name.removeprefix("gemm_conv.")))
    if name.startswith("gemm_param."):  # B is a parameter's matrix: packed once, kept by the module
        from archir.backends.llvm.gemm_prepack import param_gemm_function

        return param_gemm_function(module, name.removeprefix("gemm_param."))
    if name.startswith("flash."):  # one flash-attention tile kernel, specialised by its name
        from archir.backends.llvm.flash_kernel import flash_function

        return flash_function(module, name.removeprefix("flash."))
    raise KeyError(f"unknown runtime function {name}")


def _gemm_once(module: ir.Module, symbol: str, **options: Any) -> ir.Function:
    """The GEMM function `symbol` of `module`, defined on first use (one per module)."""
    from archir.backends.llvm.gemm import gemm_function

    existing = module.globals.get(symbol)
    return existing if isinstance(existing, ir.Function) else gemm_function(module, symbol, **options)


def llvm_module(program: Program) -> ir.Module:
    module = create_module(f"archir_{program.name}")
    generate(module, program, externals)
    from archir.backends.llvm.gemm_prepack import release_function

    release_function(module)  # frees the packed weights; LLVMModule calls it when collected
    return module


@functools.cache
def _empty_module_text() -> str:
    return str(create_module("archir_empty"))


def optimise(module: ir.Module, opt: int = 3) -> llvm.ModuleRef:
    """Parse, verify and run the O`opt` new-pass-manager pipeline with vectorisation on."""
    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    tm = host_target().target_machine(opt=opt)
    pto = llvm.PipelineTuningOptions(speed_level=opt)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    # The unroller after vectorisation doubles compile time for little gain on these loops; the
    # GEMM micro-kernel is register-blocked by hand and does not rely on it.
    pto.loop_unrolling = False
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(parsed, pb)
    return parsed


def emit_object(optimised: llvm.ModuleRef, opt: int = 3) -> bytes:
    return host_target().target_machine(opt=opt).emit_object(optimised)


def emit_assembly(optimised: llvm.ModuleRef, opt: int = 3) -> str:
    return host_target().target_machine(opt=opt).emit_assembly(optimised)


@dataclass(slots=True)
class LoadedCode:
    """An object file linked into the process; keep it alive while the entry point is used."""

    engine: llvm.ExecutionEngine
    address: int


def load_object(code: bytes) -> LoadedCode:
    from archir.backends.llvm import threads

    threads.runtime_engine()  # publishes archir_parallel_for before the object is linked
    tm = host_target().target_machine()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(_empty_module_text()), tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(code))
    engine.finalize_object()
    address = engine.get_function_address(ENTRY)
    if not address:
        raise RuntimeError(f"object code has no {ENTRY}")
    return LoadedCode(engine, address)
