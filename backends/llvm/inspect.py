"""What the llvm backend makes of a graph, stage by stage: loop IR, LLVM IR, assembly.

`emit(graph, "loops" | "llvm" | "asm")` is what `archir dump MODEL --backend llvm --emit ...` prints.
"""

from __future__ import annotations

from archir.errors import BackendError
from archir.ir import Graph

STAGES = ("loops", "llvm", "asm")


def emit(graph: Graph, stage: str = "loops") -> str:
    from archir.backends.llvm import build
    from archir.backends.llvm.loops import print_program
    from archir.backends.llvm.lower import lower_graph

    if stage not in STAGES:
        raise BackendError(f"unknown llvm stage '{stage}'", hint=f"use one of {', '.join(STAGES)}")
    program = lower_graph(graph)
    if stage == "loops":
        return print_program(program)
    optimised = build.optimise(build.llvm_module(program))
    return str(optimised) if stage == "llvm" else build.emit_assembly(optimised)
