"""The LLVM CPU backend: graphs lowered to loop nests, then to native code for this CPU with llvmlite.

`compile_graph(graph, "llvm")` gives an `LLVMModule`; `load(dir)` loads a written artifact;
`emit(graph, stage)` shows the loop IR, the LLVM IR or the assembly.
"""

from archir.backends.llvm.artifact import load
from archir.backends.llvm.inspect import emit
from archir.backends.llvm.module import LLVMModule, compile_llvm
from archir.backends.llvm.threads import get_threads, set_threads

from archir.backend import register_emitter, register_loader

register_loader("llvm", load)
register_emitter("llvm", emit, ("loops", "llvm", "asm"))

__all__ = ["LLVMModule", "compile_llvm", "emit", "get_threads", "load", "set_threads"]
