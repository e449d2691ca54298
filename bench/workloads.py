"""The model workloads of bench/models.py, each written twice with the same weights: a torch module
(the peers' form, as in ../shared/research/peer_baseline.py) and an archir DSL module whose weights
are loaded from the torch module's state_dict, plus seeded fp32 inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as TF
from archir.frontends.dsl import Tensor
from archir.frontends.dsl import functional as F
from torch import nn as tnn

import archir
from archir import nn
from archir.ir import Graph


@dataclass(slots=True)
class Workload:
    """One row of the table: the archir graph, its torch twin, and the inputs both are called on."""

    name: str
    graph: Graph
    torch_module: tnn.Module
    inputs: list[np.ndarray]
    unit: str = "ms"


DECODE_BLOCKS = 4  # fixed: the DSL decode model spells out each block's past K/V inputs


@dataclass(frozen=True, slots=True)
class Sizes:
    """Every size a workload uses; `SMOKE` shrinks them all so the script runs in seconds."""

    rows: int = 64
    dim: int = 768
    heads: int = 12
    chain_rows: int = 4096
    softmax: int = 4096
    seqs: tuple[int, int] = (128, 512)
    lstm: tuple[int, int, int, int] = (256, 512, 128, 16)  # input, hidden, seq, batch
    conv: tuple[int, int, int] = (64, 56, 8)  # channels, H = W, batch
    decode: tuple[int, int] = (8, 512)  # batch, past tokens (DECODE_BLOCKS blocks)


FULL = Sizes()
SMOKE = Sizes(rows=4, dim=32, heads=4, chain_rows=8, softmax=16, seqs=(8, 16), lstm=(8, 16, 4, 2),
              conv=(4, 8, 1), decode=(2, 8))


# -- torch side (peer_baseline.py's modules, plus the block, LSTM and decode wrappers) ----------
class TorchMLP(tnn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = tnn.Linear(d, h), tnn.Linear(h, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(TF.gelu(self.fc1(x), approximate="tanh"))


class TorchLnGelu(tnn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln = tnn.LayerNorm(d)
        self.w, self.b = tnn.Parameter(torch.randn(d)), tnn.Parameter(torch.randn(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + TF.gelu(self.ln(x) * self.w + self.b, approximate="tanh")


class TorchSoftmax(tnn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, -1)


def _torch_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    b, s, d = t.shape
    return t.view(b, s, heads, d // heads).transpose(1, 2)


class TorchBlock(tnn.Module):
    """peer_baseline's block verbatim: note its MLP residual adds ln2(x), not x (same cost)."""

    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.ln1, self.qkv, self.proj = tnn.LayerNorm(d), tnn.Linear(d, 3 * d), tnn.Linear(d, d)
        self.ln2, self.mlp = tnn.LayerNorm(d), TorchMLP(d, 4 * d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (_torch_heads(p, self.h) for p in self.qkv(self.ln1(x)).split(d, -1))
        a = TF.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(a)
        return self.mlp(self.ln2(x))


class TorchLSTM(tnn.Module):
    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.lstm = tnn.LSTM(n_in, hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, (h, c) = self.lstm(x)
        return out, h, c


class TorchBasicBlock(tnn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(c, c, 3, padding=1, bias=False), tnn.BatchNorm2d(c)
        self.conv2, self.bn2 = tnn.Conv2d(c, c, 3, padding=1, bias=False), tnn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = TF.relu(self.bn1(self.conv1(x)))
        return TF.relu(self.bn2(self.conv2(y)) + x)


class TorchDecodeBlock(tnn.Module):
    """A standard GPT-2 block for one new token attending to its past K/V plus itself."""

    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.ln_1, self.qkv, self.proj = tnn.LayerNorm(d), tnn.Linear(d, 3 * d), tnn.Linear(d, d)
        self.ln_2, self.fc, self.fc_proj = tnn.LayerNorm(d), tnn.Linear(d, 4 * d), tnn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor, past_k: torch.Tensor,
                past_v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, t, d = x.shape
        q, k, v = (_torch_heads(p, self.h) for p in self.qkv(self.ln_1(x)).split(d, -1))
        keys, values = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)
        a = TF.scaled_dot_product_attention(q, keys, values).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(a)
        return x + self.fc_proj(TF.gelu(self.fc(self.ln_2(x)), approximate="tanh")), k, v


class TorchDecode(tnn.Module):
    def __init__(self, d: int, h: int, blocks: int) -> None:
        super().__init__()
        self.blocks = tnn.ModuleList([TorchDecodeBlock(d, h) for _ in range(blocks)])

    def forward(self, x: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        new: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, past[2 * i], past[2 * i + 1])
            new += [k, v]
        return (x, *new)


# -- archir DSL side: the same computations, parameter names matching the torch modules --------
class MLP(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        self.fc1, self.fc2 = nn.Linear(d, h), nn.Linear(h, d)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class LnGelu(nn.Module):
    def __init__(self, d: int) -> None:
        self.ln = nn.LayerNorm(d)
        self.w, self.b = nn.Parameter(d), nn.Parameter(d)

    def forward(self, x: Tensor) -> Tensor:
        return x + F.gelu(self.ln(x) * self.w + self.b, approximate="tanh")


class Softmax(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.softmax(axis=-1)


def _heads(t: Tensor, heads: int) -> Tensor:
    b, s, d = t.shape
    return t.reshape(b, s, heads, d // heads).transpose(1, 2)


class Block(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        self.h = h
        self.ln1, self.qkv, self.proj = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ln2, self.mlp = nn.LayerNorm(d), MLP(d, 4 * d)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = (_heads(p, self.h) for p in self.qkv(self.ln1(x)).chunk(3, axis=-1))
        a = F.attention(q, k, v, causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(a)
        return self.mlp(self.ln2(x))


class LSTM(nn.Module):
    def __init__(self, n_in: int, hidden: int) -> None:
        self.lstm = nn.LSTM(n_in, hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out, (h, c) = self.lstm(x)
        return out, h, c


class BasicBlock(nn.Module):
    def __init__(self, c: int) -> None:
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + x)


class DecodeBlock(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        self.h = h
        self.ln_1, self.qkv, self.proj = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ln_2, self.fc, self.fc_proj = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: Tensor, past_k: Tensor, past_v: Tensor) -> tuple[Tensor, ...]:
        b, t, d = x.shape
        q, k, v = (_heads(p, self.h) for p in self.qkv(self.ln_1(x)).chunk(3, axis=-1))
        keys, values = F.concat(past_k, k, axis=2), F.concat(past_v, v, axis=2)
        a = F.attention(q, keys, values).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(a)
        return x + self.fc_proj(F.gelu(self.fc(self.ln_2(x)), approximate="tanh")), k, v


class Decode(nn.Module):
    """DECODE_BLOCKS blocks (the trace needs named inputs, so each block's past K/V is spelt out)."""

    def __init__(self, d: int, h: int) -> None:
        self.blocks = nn.ModuleList([DecodeBlock(d, h) for _ in range(DECODE_BLOCKS)])

    def forward(self, x: Tensor, past_k0: Tensor, past_v0: Tensor, past_k1: Tensor, past_v1: Tensor,
                past_k2: Tensor, past_v2: Tensor, past_k3: Tensor, past_v3: Tensor) -> tuple[Tensor, ...]:
        # Not k0/v0: the torch backend's generated temporaries are v0, v1, ... and would shadow them.
        past = [past_k0, past_v0, past_k1, past_v1, past_k2, past_v2, past_k3, past_v3]
        new = []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, past[2 * i], past[2 * i + 1])
            new += [k, v]
        return (x, *new)


class Add(nn.Module):
    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x + y


class TorchAdd(tnn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


# -- pairing -----------------------------------------------------------------------------------
def _pair(name: str, torch_module: tnn.Module, dsl_module: nn.Module, shapes: dict[str, list[int]],
          unit: str = "ms") -> Workload:
    """Trace `dsl_module` with the torch module's weights and draw inputs of `shapes` (seed 0)."""
    torch_module.eval()
    dsl_module.load_state_dict({k: v.detach() for k, v in torch_module.state_dict().items()})
    types = {n: archir.f32[tuple(s)] for n, s in shapes.items()}
    graph = archir.nn.trace(dsl_module, types, name=name.split("[")[0].replace("-", "_"))
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s, dtype=np.float32) for s in shapes.values()]
    return Workload(name, graph, torch_module, inputs, unit)


def _random_bn_stats(module: tnn.Module) -> None:
    """Non-trivial running statistics, so inference batch norm is checked for real."""
    for m in module.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


Maker = Callable[[], tuple[tnn.Module, nn.Module, dict[str, list[int]]]]


def _resnet(c: int) -> tuple[tnn.Module, nn.Module]:
    module = TorchBasicBlock(c)
    with torch.no_grad():
        _random_bn_stats(module)
    return module, BasicBlock(c)


def _decode_shapes(s: Sizes) -> dict[str, list[int]]:
    batch, past = s.decode
    shapes = {"x": [batch, 1, s.dim]}
    for i in range(DECODE_BLOCKS):
        shapes[f"past_k{i}"] = [batch, s.heads, past, s.dim // s.heads]
        shapes[f"past_v{i}"] = [batch, s.heads, past, s.dim // s.heads]
    return shapes


def _makers(s: Sizes) -> list[tuple[str, Maker]]:
    """(name, maker of (torch module, DSL module, input shapes)) for every workload."""
    d, h = s.dim, s.heads
    (lin, lhid, lseq, lbatch), (ch, hw, cb), (db, past) = s.lstm, s.conv, s.decode
    makers: list[tuple[str, Maker]] = [
        (f"mlp[{s.rows},{d}]", lambda: (TorchMLP(d, 4 * d), MLP(d, 4 * d), {"x": [s.rows, d]})),
        (f"ln-gelu[{s.chain_rows},{d}]", lambda: (TorchLnGelu(d), LnGelu(d), {"x": [s.chain_rows, d]})),
        (f"softmax[{s.softmax},{s.softmax}]", lambda: (TorchSoftmax(), Softmax(), {"x": [s.softmax] * 2})),
    ]
    for t in s.seqs:
        makers.append((f"gpt2-block[1,{t},{d}]",
                       lambda t=t: (TorchBlock(d, h), Block(d, h), {"x": [1, t, d]})))
    makers += [
        (f"lstm[{lin}->{lhid}, T{lseq}, B{lbatch}]",
         lambda: (TorchLSTM(lin, lhid), LSTM(lin, lhid), {"x": [lseq, lbatch, lin]})),
        (f"resnet-basic-block[{cb},{ch},{hw},{hw}]", lambda: (*_resnet(ch), {"x": [cb, ch, hw, hw]})),
        (f"gpt2-decode[{DECODE_BLOCKS} blocks, B{db}, past {past}]",
         lambda: (TorchDecode(d, h, DECODE_BLOCKS), Decode(d, h), _decode_shapes(s))),
        (CALL_OVERHEAD, lambda: (TorchAdd(), Add(), {"x": [8], "y": [8]})),
    ]
    return makers


CALL_OVERHEAD = "call-overhead[add, 8 floats]"


def workloads(s: Sizes) -> list[tuple[str, Callable[[], Workload]]]:
    """(name, builder) of every model workload; builders run lazily so --only skips the rest."""
    def builder(name: str, make: Maker) -> Callable[[], Workload]:
        unit = "us" if name == CALL_OVERHEAD else "ms"
        return lambda: _pair(name, *make(), unit=unit)

    return [(name, builder(name, make)) for name, make in _makers(s)]


def block_graph(s: Sizes) -> Graph:
    """The GPT-2 block at the first sequence length, for the compile-time measurement."""
    torch.manual_seed(0)
    return _pair("gpt2-block", TorchBlock(s.dim, s.heads), Block(s.dim, s.heads),
                 {"x": [1, s.seqs[0], s.dim]}).graph
