"""Attention over concatenated keys / values read as segments (lower_pieces.py, the flash kernels'
extra segments) against the numpy interpreter and torch SDPA (1e-4 abs): decode and causal prefill
over 2 and 3 pieces at symbolic past lengths, masks, fused graphs; the concat buffer is gone.
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
from archir.symbolic import evaluate

TOL = 1e-4  # f32, absolute, against both references
PASTS = [0, 1, 63, 64, 65, 512]


def _air(pieces: list[str], tq: str, causal: bool, mask: bool, extra_out: str = "") -> str:
    """attention(q, concat(k pieces), concat(v pieces)) with pieces of the given key lengths."""
    total = " + ".join(pieces)
    ks = [f"%k{i}: f32[B, 3, {n}, 64]" for i, n in enumerate(pieces)]
    vs = [f"%v{i}: f32[B, 3, {n}, 64]" for i, n in enumerate(pieces)]
    m_arg = f", %m: bool[B, 1, 1, {total}]" if mask else ""
    out_types = f"f32[B, 3, {tq}, 64]" + (f", f32[B, 3, {total}, 64]" if extra_out else "")
    kc = ", ".join(f"%k{i}" for i in range(len(pieces)))
    vc = ", ".join(f"%v{i}" for i in range(len(pieces)))
    return f"""
graph @segs(%q: f32[B, 3, {tq}, 64], {", ".join(ks)}, {", ".join(vs)}{m_arg}) -> {out_types} {{
  %kc = concat({kc}) {{axis = 2}} : f32[B, 3, {total}, 64]
  %vc = concat({vc}) {{axis = -2}} : f32[B, 3, {total}, 64]
  %o = attention(%q, %kc, %vc{", %m" if mask else ""}) {{causal = {str(causal).lower()}}}
      : f32[B, 3, {tq}, 64]
  return %o{extra_out}
}}"""


@functools.cache
def _compiled(air: str, fuse: bool) -> LLVMModule:
    graph = parse(air)
    if fuse:
        graph = run_pipeline(graph, "canonicalize,fuse")
    module = compile_graph(graph, "llvm", pipeline="")
    assert isinstance(module, LLVMModule)
    return module


def _torch(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool, mask: np.ndarray | None) -> np.ndarray:
    """SDPA with bottom-right causality (torch's is_causal is top-left) and the bool mask combined."""
    tq, tk = q.shape[-2], k.shape[-2]
    keep = torch.ones(tq, tk, dtype=torch.bool)
    if causal:
        keep = torch.from_numpy(np.arange(tk)[None, :] <= np.arange(tq)[:, None] + (tk - tq))
    if mask is not None:
        keep = keep & torch.from_numpy(mask)
    out = F.scaled_dot_product_attention(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v),
                                         attn_mask=keep)
    return out.numpy()


def _run(air: str, fuse: bool, lengths: list[int], tq: int, causal: bool, mask: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    b = 2
    q = rng.standard_normal((b, 3, tq, 64)).astype(np.float32)
    ks = [rng.standard_normal((b, 3, n, 64)).astype(np.float32) for n in lengths]
    vs = [rng.standard_normal((b, 3, n, 64)).astype(np.float32) for n in lengths]
    arrays = [q, *ks, *vs]
    keep = None
    if mask:
        keep = rng.random((b, 1, 1, sum(lengths))) < 0.7
        keep[..., -1] = True  # every query sees a key: torch gives nan for an all-masked row
        arrays.append(keep)
    got = _compiled(air, fuse)(*arrays)[0]
    np.testing.assert_allclose(got, interpret(parse(air), *arrays)[0], atol=TOL, rtol=0)
    want = _torch(q, np.concatenate(ks, axis=2), np.concatenate(vs, axis=2), causal, keep)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def _concat_size(module: LLVMModule, size: dict[str, int], total: int) -> list[int]:
    """Temps of the module holding exactly `total` elements at `size` (a concat buffer)."""
    return [evaluate(s, size) for _, s in module.layout.temps if evaluate(s, size) == total]


@pytest.mark.parametrize(("fuse", "mask"), [(False, False), (True, True)])
def test_decode_two_pieces_symbolic_past(fuse: bool, mask: bool) -> None:
    """One query over concat(past[P], new[1]): compiled once, run at every past length."""
    air = _air(["P", "1"], "1", False, mask)
    assert "_r1_s2(" in print_program(lower_graph(parse(air))), "not the decode kernel over 2 segments"
    for p in PASTS:
        _run(air, fuse, [p, 1], 1, False, mask, seed=p)
    assert not _concat_size(_compiled(air, fuse), {"B": 2, "P": 64}, 2 * 3 * 65 * 64)


def test_decode_three_pieces() -> None:
    """Unfused (the fused pipeline's flash group runs in the two-piece and prefill tests)."""
    air = _air(["P", "5", "1"], "1", False, True)
    assert "_r1_s3(" in print_program(lower_graph(parse(air)))
    for p in (0, 63, 130):
        _run(air, False, [p, 5, 1], 1, False, True, seed=p + 1)


@pytest.mark.parametrize("fuse", [False, True])
def test_prefill_causal_two_pieces(fuse: bool) -> None:
    """Tq = T new tokens after P cached ones, bottom-right causal, the 16-query tile kernel."""
    air = _air(["P", "T"], "T", True, False)
    assert "_r0_s2(" in print_program(lower_graph(parse(air)))
    for p, t in [(0, 17), (1, 5), (63, 40), (65, 16), (512, 33)]:
        _run(air, fuse, [p, t], t, True, False, seed=p * 7 + t)


def test_prefill_three_pieces_masked() -> None:
    air = _air(["P", "7", "T"], "T", True, True)
    for p, t in [(0, 3), (64, 20), (100, 1)]:
        _run(air, True, [p, 7, t], t, True, True, seed=p + t)


def test_fused_decode_block_has_no_concat_buffer() -> None:
    """A GPT-2 style decode block (heads split by layout ops in the fused flash group, new K/V
    returned): matches the interpreter, and neither loops nor arena hold a [B, H, P + 1, D] concat."""
    air = """
graph @blk(%x: f32[B, 1, 192], %w: f32[576, 192], %pk: f32[B, 3, P, 64], %pv: f32[B, 3, P, 64])
    -> f32[B, 1, 3, 64], f32[B, 3, 1, 64], f32[B, 3, 1, 64] {
  %qkv = linear(%x, %w) : f32[B, 1, 576]
  %q, %k, %v = split(%qkv) {axis = -1, sizes = [192, 192, 192]}
      : f32[B, 1, 192], f32[B, 1, 192], f32[B, 1, 192]
  %q4 = reshape(%q) {shape = [B, 1, 3, 64]} : f32[B, 1, 3, 64]
  %qh = transpose(%q4) {perm = [0, 2, 1, 3]} : f32[B, 3, 1, 64]
  %k4 = reshape(%k) {shape = [B, 1, 3, 64]} : f32[B, 1, 3, 64]
  %kh = transpose(%k4) {perm = [0, 2, 1, 3]} : f32[B, 3, 1, 64]
  %v4 = reshape(%v) {shape = [B, 1, 3, 64]} : f32[B, 1, 3, 64]
  %vh = transpose(%v4) {perm = [0, 2, 1, 3]} : f32[B, 3, 1, 64]
  %kc = concat(%pk, %kh) {axis = 2} : f32[B, 3, P + 1, 64]
  %vc = concat(%pv, %vh) {axis = 2} : f32[B, 3, P + 1, 64]
  %a = attention(%qh, %kc, %vc) : f32[B, 3, 1, 64]
  %o = transpose(%a) {perm = [0, 2, 1, 3]} : f32[B, 1, 3, 64]
  return %o, %kh, %vh
}"""
    graph = run_pipeline(parse(air), "canonicalize,fuse")
    assert any(n.op == "fused" and n.attrs.get("flash") for n in graph.nodes), "no fused flash group"
    loops = print_program(lower_graph(graph))
    assert "_s2(" in loops and "concat" not in loops
    module = compile_graph(graph, "llvm", pipeline="")
    assert isinstance(module, LLVMModule)
    assert not _concat_size(module, {"B": 2, "P": 64}, 2 * 3 * 65 * 64)
    rng = np.random.default_rng(9)
    for p in (0, 64, 65):
        arrays = [rng.standard_normal(s).astype(np.float32)
                  for s in ((2, 1, 192), (576, 192), (2, 3, p, 64), (2, 3, p, 64))]
        for got, want in zip(module(*arrays), interpret(parse(air), *arrays), strict=True):
            np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def test_concat_also_returned_keeps_its_copy() -> None:
    """The keys' concat is a graph output too: written (into the output), and still correct."""
    air = _air(["P", "1"], "1", False, False, extra_out=", %kc")
    assert "concat" in print_program(lower_graph(parse(air)))
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s).astype(np.float32)
              for s in ((2, 3, 1, 64), (2, 3, 40, 64), (2, 3, 1, 64), (2, 3, 40, 64), (2, 3, 1, 64))]
    got = _compiled(air, False)(*arrays)
    for g, w in zip(got, interpret(parse(air), *arrays), strict=True):
        np.testing.assert_allclose(g, w, atol=TOL, rtol=0)
    np.testing.assert_array_equal(got[1], np.concatenate(arrays[1:3], axis=2))


def test_concat_with_another_reader_keeps_its_buffer() -> None:
    """Keys also summed by another op: the concat is materialised into a temp of its size."""
    air = """
graph @other(%q: f32[2, 3, 1, 64], %pk: f32[2, 3, P, 64], %k: f32[2, 3, 1, 64], %v: f32[2, 3, P + 1, 64])
    -> f32[2, 3, 1, 64], f32[2, 3, 64] {
  %kc = concat(%pk, %k) {axis = 2} : f32[2, 3, P + 1, 64]
  %o = attention(%q, %kc, %v) : f32[2, 3, 1, 64]
  %s = sum(%kc) {axes = [2]} : f32[2, 3, 64]
  return %o, %s
}"""
    module = _compiled(air, False)
    assert _concat_size(module, {"P": 9}, 2 * 3 * 10 * 64)
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s).astype(np.float32)
              for s in ((2, 3, 1, 64), (2, 3, 9, 64), (2, 3, 1, 64), (2, 3, 10, 64))]
    for g, w in zip(module(*arrays), interpret(parse(air), *arrays), strict=True):
        np.testing.assert_allclose(g, w, atol=TOL, rtol=0)


def test_keys_and_values_split_differently() -> None:
    """K = concat(P, 1) and V = concat(1, P): V is copied and cut like K; also a concat along the
    head dim (not the key axis) keeps its copy."""
    air = """
graph @mixed(%q: f32[2, 3, 1, 64], %k0: f32[2, 3, P, 64], %k1: f32[2, 3, 1, 64], %v0: f32[2, 3, 1, 64],
             %v1: f32[2, 3, P, 64], %d0: f32[2, 3, 1, 32], %d1: f32[2, 3, 1, 32]) -> f32[2, 3, 1, 64] {
  %kc = concat(%k0, %k1) {axis = 2} : f32[2, 3, P + 1, 64]
  %vc = concat(%v0, %v1) {axis = 2} : f32[2, 3, P + 1, 64]
  %qd = concat(%d0, %d1) {axis = -1} : f32[2, 3, 1, 64]
  %a = attention(%q, %kc, %vc) : f32[2, 3, 1, 64]
  %b = attention(%qd, %kc, %vc) : f32[2, 3, 1, 64]
  %o = add(%a, %b) : f32[2, 3, 1, 64]
  return %o
}"""
    module = _compiled(air, False)
    rng = np.random.default_rng(5)
    for p in (0, 70):
        arrays = [rng.standard_normal(s).astype(np.float32)
                  for s in ((2, 3, 1, 64), (2, 3, p, 64), (2, 3, 1, 64), (2, 3, 1, 64), (2, 3, p, 64),
                            (2, 3, 1, 32), (2, 3, 1, 32))]
        np.testing.assert_allclose(module(*arrays)[0], interpret(parse(air), *arrays)[0], atol=TOL, rtol=0)
