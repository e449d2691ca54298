"""Positional encodings of the DSL against independent PyTorch references written here (and, marked
slow, HF's Llama RoPE and BLOOM ALiBi helpers), on the interpreter and the torch backend.

Each encoding is traced once with a symbolic length and run at several lengths. Tolerance 1e-5, f32.
"""

import math

import numpy as np
import pytest
import torch

import archir
from archir import nn
from archir.backend import compile_graph

TOLERANCE = 1e-5
BACKENDS = ("interp", "torch")
LENGTHS = (1, 6, 17)


def run(graph: archir.Graph, backend: str, *arrays: np.ndarray) -> np.ndarray:
    return np.asarray(compile_graph(graph, backend)(*arrays)[0])


def close(actual: np.ndarray, expected: torch.Tensor) -> None:
    np.testing.assert_allclose(actual, expected.numpy(), atol=TOLERANCE, rtol=TOLERANCE)


# -- sinusoidal ---------------------------------------------------------------------------------

class AddSinusoidal(nn.Module):
    def __init__(self, dim: int) -> None:
        self.pe = nn.SinusoidalPositionalEncoding(dim)

    def forward(self, x):
        return x + self.pe(x.shape[1])


def aiayn_encoding(length: int, dim: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i / d)), PE(pos, 2i + 1) = cos(pos / 10000^(2i / d))."""
    pe = torch.zeros(length, dim, dtype=torch.float64)
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos / 10000 ** (two_i / dim))
    pe[:, 1::2] = torch.cos(pos / 10000 ** (two_i / dim))
    return pe.float()


@pytest.mark.parametrize("backend", BACKENDS)
def test_sinusoidal_matches_attention_is_all_you_need(backend: str) -> None:
    graph = AddSinusoidal(16).to_graph(x=archir.f32["B", "T", 16])
    rng = np.random.default_rng(0)
    for t in (*LENGTHS, 64):
        x = rng.standard_normal((2, t, 16)).astype(np.float32)
        close(run(graph, backend, x), torch.from_numpy(x) + aiayn_encoding(t, 16))


# -- rotary -------------------------------------------------------------------------------------

class Rotate(nn.Module):
    def __init__(self, head_dim: int, base: float) -> None:
        self.rope = nn.RotaryEmbedding(head_dim, base)

    def forward(self, q, k):
        return self.rope(q), self.rope(k)


def rope_cos_sin(length: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [1, T, Dh] in Llama's layout (the frequencies repeated over both halves)."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float64), inv_freq)
    emb = torch.cat([angles, angles], dim=-1)[None]
    return emb.cos().float(), emb.sin().float()


def rotate_half_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1) over the halves of Dh."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos[:, None] + torch.cat([-x2, x1], dim=-1) * sin[:, None]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("base", [10000.0, 500.0])
def test_rope_matches_rotate_half(backend: str, base: float) -> None:
    graph = Rotate(8, base).to_graph(q=archir.f32["B", 3, "T", 8], k=archir.f32["B", 3, "T", 8])
    rng = np.random.default_rng(1)
    for t in LENGTHS:
        q, k = (rng.standard_normal((2, 3, t, 8)).astype(np.float32) for _ in range(2))
        cos, sin = rope_cos_sin(t, 8, base)
        outputs = compile_graph(graph, backend)(q, k)
        close(np.asarray(outputs[0]), rotate_half_reference(torch.from_numpy(q), cos, sin))
        close(np.asarray(outputs[1]), rotate_half_reference(torch.from_numpy(k), cos, sin))


@pytest.mark.slow  # importing transformers' modelling code takes seconds
def test_rope_matches_hf_llama() -> None:
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    graph = Rotate(8, 10000.0).to_graph(q=archir.f32["B", 3, "T", 8], k=archir.f32["B", 3, "T", 8])
    rng = np.random.default_rng(1)
    q, k = (rng.standard_normal((2, 3, 11, 8)).astype(np.float32) for _ in range(2))
    q_ref, k_ref = apply_rotary_pos_emb(torch.from_numpy(q), torch.from_numpy(k), *rope_cos_sin(11, 8, 1e4))
    outputs = compile_graph(graph)(q, k)
    close(np.asarray(outputs[0]), q_ref)
    close(np.asarray(outputs[1]), k_ref)


def test_rope_scores_depend_only_on_relative_position() -> None:
    """The defining property: <rope(q)_i, rope(k)_j> is the same for equal i - j."""
    graph = Rotate(8, 10000.0).to_graph(q=archir.f32[1, 1, "T", 8], k=archir.f32[1, 1, "T", 8])
    v = np.random.default_rng(2).standard_normal(8).astype(np.float32)
    w = np.random.default_rng(3).standard_normal(8).astype(np.float32)
    tiled_q, tiled_k = np.tile(v, (1, 1, 9, 1)), np.tile(w, (1, 1, 9, 1))
    rq, rk = (np.asarray(a)[0, 0] for a in compile_graph(graph)(tiled_q, tiled_k))
    scores = rq @ rk.T
    for offset in (0, 2, -3):
        diagonal = np.diagonal(scores, offset)
        np.testing.assert_allclose(diagonal, diagonal[0], atol=1e-4)


# -- ALiBi --------------------------------------------------------------------------------------

class AlibiBias(nn.Module):
    def __init__(self, heads: int) -> None:
        self.alibi = nn.ALiBi(heads)

    def forward(self, q, k):
        return self.alibi(q.shape[1], k.shape[1])


def paper_slopes(n: int) -> torch.Tensor:
    """ALiBi's slopes: 2^(-8/p) ** (1..p) for the power of two p <= n, then for the n - p
    remaining heads the odd-numbered slopes of 2p."""
    p = 2 ** math.floor(math.log2(n))
    first = torch.pow(torch.tensor(2.0 ** (-8.0 / p), dtype=torch.float64), torch.arange(1, p + 1))
    extra_base = torch.tensor(2.0 ** (-8.0 / (2 * p)), dtype=torch.float64)
    extra = torch.pow(extra_base, 2 * torch.arange(n - p) + 1)
    return torch.cat([first, extra]).float()


@pytest.mark.parametrize("heads", [1, 3, 4, 5, 6, 8, 12])
def test_alibi_slopes_match_the_paper(heads: int) -> None:
    close(nn.attention.alibi_slopes(heads), paper_slopes(heads))


def test_alibi_slopes_for_eight_heads_are_the_papers_sequence() -> None:
    np.testing.assert_array_equal(nn.attention.alibi_slopes(8), [1 / 2 ** i for i in range(1, 9)])


@pytest.mark.slow  # importing transformers' modelling code takes seconds
@pytest.mark.parametrize("heads", [5, 12, 16])
def test_alibi_slopes_match_bloom(heads: int) -> None:
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    # BLOOM's bias at key position 1 (mask all ones) is exactly slope_h
    bloom = build_alibi_tensor(torch.ones(1, 3), heads, torch.float32)
    close(nn.attention.alibi_slopes(heads), bloom[:, 0, 1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("heads", [4, 6])
def test_alibi_bias_is_slope_times_distance(backend: str, heads: int) -> None:
    graph = AlibiBias(heads).init(seed=0).to_graph(q=archir.f32["B", "T", 4], k=archir.f32["B", "S", 4])
    for t, s in ((1, 1), (5, 5), (4, 9)):
        q, k = np.zeros((1, t, 4), np.float32), np.zeros((1, s, 4), np.float32)
        distance = torch.arange(s)[None, :] - torch.arange(t)[:, None]  # key minus query position
        expected = paper_slopes(heads)[:, None, None] * distance[None].float()
        close(run(graph, backend, q, k), expected)


# -- relative position bias ---------------------------------------------------------------------

class RelativeBias(nn.Module):
    def __init__(self, heads: int, max_distance: int) -> None:
        self.rel = nn.RelativePositionBias(heads, max_distance)

    def forward(self, q, k):
        return self.rel(q.shape[1], k.shape[1])


def clipped_relative_bias(table: torch.Tensor, t: int, s: int, max_distance: int) -> torch.Tensor:
    """Shaw et al.: bias[h, i, j] = table[clip(j - i, -m, m) + m, h]."""
    distance = torch.arange(s)[None, :] - torch.arange(t)[:, None]
    return table[distance.clamp(-max_distance, max_distance) + max_distance].permute(2, 0, 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_relative_position_bias_clips_distances(backend: str) -> None:
    heads, m = 3, 4
    model = RelativeBias(heads, m).init(seed=0)
    table = torch.from_numpy(model.rel.weight.data)
    assert table.shape == (2 * m + 1, heads)
    graph = model.to_graph(q=archir.f32["B", "T", 2], k=archir.f32["B", "S", 2])
    for t, s in ((1, 1), (6, 6), (3, 11), (12, 2)):
        q, k = np.zeros((1, t, 2), np.float32), np.zeros((1, s, 2), np.float32)
        close(run(graph, backend, q, k), clipped_relative_bias(table, t, s, m))


# -- learned absolute ---------------------------------------------------------------------------

class AddLearned(nn.Module):
    def __init__(self, max_len: int, dim: int) -> None:
        self.pos = nn.LearnedPositionalEmbedding(max_len, dim)

    def forward(self, x):
        return x + self.pos(x.shape[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_learned_absolute_matches_torch_embedding(backend: str) -> None:
    torch.manual_seed(0)
    reference = torch.nn.Embedding(32, 8)
    model = AddLearned(32, 8)
    model.load_state_dict({"pos.weight": reference.weight})
    graph = model.to_graph(x=archir.f32["B", "T", 8])
    rng = np.random.default_rng(4)
    for t in (*LENGTHS, 32):
        x = rng.standard_normal((2, t, 8)).astype(np.float32)
        with torch.no_grad():
            expected = torch.from_numpy(x) + reference(torch.arange(t))
        close(run(graph, backend, x), expected)
