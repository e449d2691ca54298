"""The llvm backend's flash-attention kernel (lower_attention.py, flash_kernel.py) against the numpy
interpreter and torch's scaled_dot_product_attention: causal or not, masks, decode shapes, odd
tile tails, strided heads of a fused GPT-2 graph, symbolic sizes, 16-bit floats, arena size.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from archir.backends.llvm.loops import print_program
from archir.backends.llvm.lower import lower_graph
from archir.backends.llvm.module import LLVMModule

from archir.backend import compile_graph
from archir.interpreter import run as interpret
from archir.parser import parse
from archir.pass_manager import run_pipeline
from archir.types import DType

TOL = 1e-4  # f32, absolute, against both references


@functools.cache
def _compiled(air: str, fuse: bool = False) -> LLVMModule:
    graph = parse(air)
    if fuse:
        graph = run_pipeline(graph, "canonicalize,fuse")
    module = compile_graph(graph, "llvm", pipeline="")
    assert isinstance(module, LLVMModule)
    assert "call flash." in print_program(lower_graph(graph)), "attention did not use the flash kernel"
    return module


def _attention_air(d: int, dv: int, causal: bool, mask: str = "", q_shape: str = "B, H, TQ",
                   kv_shape: str = "B, H, TK", dtype: str = "f32") -> str:
    mask_arg = f", %m: {mask}" if mask else ""
    mask_use = ", %m" if mask else ""
    operands = f"%q: {dtype}[{q_shape}, {d}], %k: {dtype}[{kv_shape}, {d}], %v: {dtype}[{kv_shape}, {dv}]"
    return f"""
graph @attn({operands}{mask_arg})
    -> {dtype}[{q_shape}, {dv}] {{
  %0 = attention(%q, %k, %v{mask_use}) {{causal = {str(causal).lower()}}} : {dtype}[{q_shape}, {dv}]
  return %0
}}"""


def _bottom_right(tq: int, tk: int) -> np.ndarray:
    return np.arange(tk)[None, :] <= np.arange(tq)[:, None] + (tk - tq)


def _torch(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool,
           mask: np.ndarray | None = None) -> np.ndarray:
    """torch's SDPA; its is_causal is top-left aligned, so causality goes in as a bool mask."""
    keep = None if mask is None else torch.from_numpy(mask)
    if causal:
        tri = torch.from_numpy(_bottom_right(q.shape[-2], k.shape[-2]))
        keep = tri if keep is None else (keep & tri if keep.dtype == torch.bool
                                         else keep.masked_fill(~tri, float("-inf")))
    out = F.scaled_dot_product_attention(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v),
                                         attn_mask=keep)
    return out.numpy()


def _qkv(rng: np.random.Generator, b: int, h: int, tq: int, tk: int, d: int, dv: int,
         ) -> list[np.ndarray]:
    return [rng.standard_normal(s).astype(np.float32) for s in ((b, h, tq, d), (b, h, tk, d), (b, h, tk, dv))]


def _check(module: LLVMModule, air: str, arrays: list[np.ndarray], want_torch: np.ndarray | None) -> None:
    got = module(*arrays)[0]
    want = interpret(parse(air), *arrays)[0]
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    if want_torch is not None:
        np.testing.assert_allclose(got, want_torch, atol=TOL, rtol=0)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("tq", "tk"), [(100, 100), (37, 100), (1, 513), (16, 16)])
def test_symbolic_sizes_one_module(causal: bool, tq: int, tk: int) -> None:
    """One module per causal flag (T symbolic) run at sizes off the 16-query and 64-key tiles."""
    air = _attention_air(64, 64, causal)
    q, k, v = _qkv(np.random.default_rng(tq * 1000 + tk), 2, 3, tq, tk, 64, 64)
    _check(_compiled(air), air, [q, k, v], _torch(q, k, v, causal))


def test_more_queries_than_keys_causal_gives_zero_rows() -> None:
    """Bottom-right causality with Tq > Tk: the first Tq - Tk queries see no key and are 0."""
    air = _attention_air(64, 64, True)
    q, k, v = _qkv(np.random.default_rng(1), 1, 2, 40, 20, 64, 64)
    got = _compiled(air)(q, k, v)[0]
    np.testing.assert_allclose(got, interpret(parse(air), q, k, v)[0], atol=TOL, rtol=0)
    np.testing.assert_allclose(got[..., 20:, :], _torch(q[..., 20:, :], k, v, True), atol=TOL, rtol=0)


def test_decode_step() -> None:
    """Tq = 1 against 513 keys, batch 8 x 12 heads: the query-by-query decode kernel."""
    air = _attention_air(64, 64, False, q_shape="8, 12, 1", kv_shape="8, 12, 513")
    assert "_r1(" in print_program(lower_graph(parse(air)))
    q, k, v = _qkv(np.random.default_rng(2), 8, 12, 1, 513, 64, 64)
    _check(_compiled(air), air, [q, k, v], _torch(q, k, v, False))


def test_decode_causal_with_key_padding_mask() -> None:
    """A few queries (Tq = 4 < Tk) with causality and a [B, 1, 1, Tk] bool mask, decode kernel."""
    air = _attention_air(32, 16, True, mask="bool[3, 1, 1, 100]", q_shape="3, 2, 4", kv_shape="3, 2, 100")
    assert "_r1(" in print_program(lower_graph(parse(air)))
    rng = np.random.default_rng(6)
    q, k, v = _qkv(rng, 3, 2, 4, 100, 32, 16)
    mask = rng.random((3, 1, 1, 100)) < 0.8
    _check(_compiled(air), air, [q, k, v, mask], _torch(q, k, v, True, mask))


@pytest.mark.parametrize(("d", "dv"), [(8, 8), (80, 80), (64, 24)])
def test_head_sizes(d: int, dv: int) -> None:
    air = _attention_air(d, dv, True)
    q, k, v = _qkv(np.random.default_rng(d), 2, 2, 77, 77, d, dv)
    _check(_compiled(air), air, [q, k, v], _torch(q, k, v, True))


def test_bool_mask_broadcast_over_heads() -> None:
    """A [B, 1, Tq, Tk] bool mask with causality; one query of each batch sees nothing."""
    air = _attention_air(8, 8, True, mask="bool[B, 1, TQ, TK]")
    rng = np.random.default_rng(3)
    q, k, v = _qkv(rng, 2, 3, 50, 70, 8, 8)
    mask = rng.random((2, 1, 50, 70)) < 0.7
    mask[:, :, 5, :] = False  # fully masked row: zeros in the interpreter
    _check(_compiled(air), air, [q, k, v, mask], None)
    seen = [i for i in range(50) if i != 5]
    want = _torch(q[:, :, seen], k, v, False, mask[:, :, seen] & _bottom_right(50, 70)[seen])
    np.testing.assert_allclose(_compiled(air)(q, k, v, mask)[0][:, :, seen], want, atol=TOL, rtol=0)


def test_float_mask_broadcast_over_batch_and_heads() -> None:
    """An additive [Tq, Tk] mask with -inf entries (and one all -inf row), not causal."""
    air = _attention_air(64, 64, False, mask="f32[TQ, TK]")
    rng = np.random.default_rng(4)
    q, k, v = _qkv(rng, 2, 3, 33, 90, 64, 64)
    mask = rng.standard_normal((33, 90)).astype(np.float32)
    mask[rng.random((33, 90)) < 0.2] = -np.inf
    mask[7] = -np.inf
    _check(_compiled(air), air, [q, k, v, mask], None)
    seen = [i for i in range(33) if i != 7]
    want = _torch(q[:, :, seen], k, v, False, mask[seen])
    np.testing.assert_allclose(_compiled(air)(q, k, v, mask)[0][:, :, seen], want, atol=TOL, rtol=0)


GPT2_HEADS = """
graph @heads(%q: f32[B, T, 32], %k: f32[B, T, 32], %v: f32[B, T, 32]) -> f32[B, T, 32] {
  %0 = reshape(%q) {shape = [B, T, 4, 8]} : f32[B, T, 4, 8]
  %1 = transpose(%0) {perm = [0, 2, 1, 3]} : f32[B, 4, T, 8]
  %2 = reshape(%k) {shape = [B, T, 4, 8]} : f32[B, T, 4, 8]
  %3 = transpose(%2) {perm = [0, 2, 1, 3]} : f32[B, 4, T, 8]
  %4 = reshape(%v) {shape = [B, T, 4, 8]} : f32[B, T, 4, 8]
  %5 = transpose(%4) {perm = [0, 2, 1, 3]} : f32[B, 4, T, 8]
  %6 = attention(%1, %3, %5) {causal = true} : f32[B, 4, T, 8]
  %7 = transpose(%6) {perm = [0, 2, 1, 3]} : f32[B, T, 4, 8]
  %8 = reshape(%7) {shape = [B, T, 32]} : f32[B, T, 32]
  return %8
}"""


def _heads(x: np.ndarray) -> np.ndarray:
    b, t, _ = x.shape
    return np.ascontiguousarray(x.reshape(b, t, 4, 8).transpose(0, 2, 1, 3))


@pytest.mark.parametrize(("b", "t"), [(2, 45), (1, 130)])
def test_fused_gpt2_heads_are_strided_views(b: int, t: int) -> None:
    """The fused {kind = "attention", flash = true} group reads q, k, v through the heads' strides."""
    fused = run_pipeline(parse(GPT2_HEADS), "canonicalize,fuse")
    assert any(n.op == "fused" and n.attrs.get("flash") for n in fused.nodes)
    calls = [line for line in print_program(lower_graph(fused)).splitlines() if "call flash." in line]
    assert len(calls) == 1 and all(f"&%input{n}[" in calls[0] for n in range(3)), calls  # no copies
    rng = np.random.default_rng(t)
    q, k, v = (rng.standard_normal((b, t, 32)).astype(np.float32) for _ in range(3))
    want = _torch(_heads(q), _heads(k), _heads(v), True).transpose(0, 2, 1, 3).reshape(b, t, 32)
    _check(_compiled(GPT2_HEADS, fuse=True), GPT2_HEADS, [q, k, v], want)


def test_arena_holds_no_score_matrix() -> None:
    """At T = 512 the whole arena is smaller than one T x T f32 score buffer of one head."""
    module = _compiled(GPT2_HEADS, fuse=True)
    t = 512
    arena = module.layout.arena_bytes({"B": 1, "T": t})
    assert arena < t * t * 4, f"arena {arena} bytes"
    plain = _compiled(_attention_air(64, 64, True))
    assert plain.layout.arena_bytes({"B": 1, "H": 12, "TQ": t, "TK": t}) < t * t * 4


@pytest.mark.parametrize(("dtype", "tol", "tq"), [("f16", 2e-3, 70), ("bf16", 1.6e-2, 70), ("f16", 2e-3, 1),
                                                 ("bf16", 1.6e-2, 1)])
def test_half_precision_computed_in_f32(dtype: str, tol: float, tq: int) -> None:
    """16-bit inputs and output, f32 inside (tile and decode kernels): within one rounding of the
    output of the interpreter (which also computes in f32 and rounds once)."""
    air = _attention_air(64, 64, True, dtype=dtype, q_shape=f"2, 3, {tq}", kv_shape="2, 3, 70")
    graph = parse(air)
    module = compile_graph(graph, "llvm", pipeline="")
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((2, 3, t, 64)).astype(DType(dtype).numpy) for t in (tq, 70, 70)]
    got = np.asarray(module(*arrays)[0], np.float32)
    want = np.asarray(interpret(graph, *arrays)[0], np.float32)
    np.testing.assert_allclose(got, want, atol=tol, rtol=0)
