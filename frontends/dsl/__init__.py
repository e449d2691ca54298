"""The archir DSL: write an architecture as Python modules over symbolic tensors.

`archir.nn` is this package; `archir.model`, `archir.f32[...]` and the op functions
(`archir.relu`, `archir.attention`, ...) are re-exported at the top level.
"""

from archir.frontends.dsl import functional
from archir.frontends.dsl.attention import (
    ALiBi,
    LearnedPositionalEmbedding,
    MultiHeadAttention,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)
from archir.frontends.dsl.layers import (
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    RMSNorm,
)
from archir.frontends.dsl.model import FunctionModel, model, trace
from archir.frontends.dsl.module import Module, ModuleList, Parameter, Sequential
from archir.frontends.dsl.recurrent import GRU, LSTM, RNN, GRUCell
from archir.frontends.dsl.safetensors_file import load_safetensors
from archir.frontends.dsl.tensor import Tensor

__all__ = [
    "GRU", "GRUCell", "LSTM", "RNN", "ALiBi", "BatchNorm2d", "Conv1d", "Conv2d", "Dropout", "Embedding",
    "FunctionModel", "LayerNorm", "LearnedPositionalEmbedding", "Linear", "Module", "ModuleList",
    "MultiHeadAttention", "Parameter", "RMSNorm", "RelativePositionBias", "RotaryEmbedding",
    "Sequential", "SinusoidalPositionalEncoding", "Tensor", "functional", "load_safetensors", "model",
    "trace",
]
