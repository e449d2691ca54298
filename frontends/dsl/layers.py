"""Layers with parameters: Linear, Conv1d/Conv2d, Embedding, LayerNorm, RMSNorm, BatchNorm2d.

Parameter names, shapes and default initialisations follow torch.nn, so a torch `state_dict`
loads unchanged.
"""

from __future__ import annotations

from archir.frontends.dsl import functional as F
from archir.frontends.dsl.module import Module, Parameter, fan_in_uniform
from archir.frontends.dsl.tensor import Tensor


class Linear(Module):
    """y = x @ weight.T + bias, weight [out, in]."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        self.weight = Parameter(out_features, in_features, init=fan_in_uniform(in_features))
        self.bias = Parameter(out_features, init=fan_in_uniform(in_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class Conv2d(Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1,
                 bias: bool = True) -> None:
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        fan_in = in_channels // groups * kh * kw
        self.weight = Parameter(out_channels, in_channels // groups, kh, kw,
                                init=fan_in_uniform(fan_in))
        self.bias = Parameter(out_channels, init=fan_in_uniform(fan_in)) if bias else None
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=_pair(self.stride),
                        padding=_pair(self.padding), dilation=_pair(self.dilation), groups=self.groups)


class Conv1d(Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = True) -> None:
        fan_in = in_channels // groups * kernel_size
        self.weight = Parameter(out_channels, in_channels // groups, kernel_size,
                                init=fan_in_uniform(fan_in))
        self.bias = Parameter(out_channels, init=fan_in_uniform(fan_in)) if bias else None
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.weight, self.bias, stride=[self.stride], padding=[self.padding],
                        dilation=[self.dilation], groups=self.groups)


class Embedding(Module):
    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        self.weight = Parameter(num_embeddings, embedding_dim, init=("normal", 1.0))

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, self.weight)


class LayerNorm(Module):
    def __init__(self, dim: int, eps: float = 1e-5, elementwise_affine: bool = True) -> None:
        self.eps = eps
        self.weight = Parameter(dim, init="ones") if elementwise_affine else None
        self.bias = Parameter(dim, init="zeros") if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.weight, self.bias, eps=self.eps)


class RMSNorm(Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        self.eps = eps
        self.weight = Parameter(dim, init="ones")

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight, eps=self.eps)


class BatchNorm2d(Module):
    """Inference batch norm over channel axis 1 with running statistics."""

    ignored_state = ("num_batches_tracked",)

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        self.eps = eps
        self.weight = Parameter(channels, init="ones")
        self.bias = Parameter(channels, init="zeros")
        self.running_mean = Parameter(channels, init=("normal", 0.1))
        self.running_var = Parameter(channels, init=lambda rng, s: rng.uniform(0.5, 1.5, s))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            axis=1, eps=self.eps)


class Dropout(Module):
    """Identity: archir compiles inference graphs."""

    def __init__(self, p: float = 0.0) -> None:
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return x


def _pair(v: int | tuple[int, int]) -> list[int]:
    return [v, v] if isinstance(v, int) else list(v)
