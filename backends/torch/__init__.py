"""The torch backend: a graph becomes readable generated PyTorch code (CPU, or CUDA when present)."""

from archir.backends.torch.codegen import generate_source
from archir.backends.torch.module import TorchModule, compile_torch, write_artifact

from archir.backend import register_emitter

register_emitter("torch", lambda graph, stage: generate_source(graph), ("python",))

__all__ = ["TorchModule", "compile_torch", "generate_source", "write_artifact"]
