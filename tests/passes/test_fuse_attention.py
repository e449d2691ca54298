"""fuse-attention: the attention op and its decomposed pattern as flash groups; patterns that must
not be taken; text in/text out and interpreter numerics before and after (1e-6)."""

import numpy as np
import pytest

from tests.passes.cases import check_numerics, check_pipeline, parse_air

OP = """
graph @g(%q: f32[B, 2, T, 4], %k: f32[B, 2, T, 4], %v: f32[B, 2, T, 4], %lens: i64[B, 1, 1, T]) -> f32[B,
    2, T, 4] {
  %zero = full() {shape = [], value = 0.0, dtype = i64} : i64[]
  %m = gt(%lens, %zero) : bool[B, 1, 1, T]
  %a = attention(%q, %k, %v, %m) {scale = 0.25} : f32[B, 2, T, 4] @attn
  return %a
}
"""


def test_attention_op_becomes_a_flash_group_with_its_mask():
    check_pipeline(OP, "fuse-attention", """
    graph @g(%q: f32[B, 2, T, 4], %k: f32[B, 2, T, 4], %v: f32[B, 2, T, 4], %lens: i64[B, 1, 1,
        T]) -> f32[B, 2, T, 4] {
      %a = fused(%lens, %q, %k, %v) {kind = "attention", rules = "fuse-attention", flash = true} : f32[B,
          2, T, 4] @attn
          body(%0: i64[B, 1, 1, T], %1: f32[B, 2, T, 4], %2: f32[B, 2, T, 4], %3: f32[B, 2, T, 4]) {
        %4 = full() {shape = [], value = 0.0, dtype = i64} : i64[]
        %5 = gt(%0, %4) : bool[B, 1, 1, T]
        %6 = attention(%1, %2, %3, %5) {scale = 0.25} : f32[B, 2, T, 4] @attn
        yield %6
      }
      return %a
    }
    """)


# What the attention op's decomposition builds for a causal mask (archir/ops/nn.py).
PATTERN = """
graph @attn(%q: f32[B, 2, T, 4], %k: f32[B, 2, T, 4], %v: f32[B, 2, T, 4]) -> f32[B, 2, T, 4] {
  %kt = transpose(%k) {perm = [0, 1, 3, 2]} : f32[B, 2, 4, T]
  %s = matmul(%q, %kt) : f32[B, 2, T, T]
  %scale = full() {shape = [], value = 0.5} : f32[]
  %ss = mul(%s, %scale) : f32[B, 2, T, T]
  %ninf = full() {shape = [], value = -inf} : f32[]
  %rows = iota() {shape = [T, T]} : i64[T, T]
  %cols = iota() {shape = [T, T], axis = 1} : i64[T, T]
  %keep = le(%cols, %rows) : bool[T, T]
  %sm = where(%keep, %ss, %ninf) : f32[B, 2, T, T]
  %mx = max(%sm) {axes = [-1], keepdims = true} : f32[B, 2, T, 1]
  %dead = eq(%mx, %ninf) : bool[B, 2, T, 1]
  %zero = full() {shape = [], value = 0.0} : f32[]
  %p = softmax(%sm) : f32[B, 2, T, T]
  %pz = where(%dead, %zero, %p) : f32[B, 2, T, T]
  %o = matmul(%pz, %v) : f32[B, 2, T, 4]
  return %o
}
"""


def test_decomposed_causal_pattern_becomes_one_group():
    # Everything between the two matmuls, and the causal mask built from iotas, is inside: the
    # only [T, T] values are internal. The transpose of k is left for fold-layout.
    check_pipeline(PATTERN, "fuse-attention", """
    graph @attn(%q: f32[B, 2, T, 4], %k: f32[B, 2, T, 4], %v: f32[B, 2, T, 4]) -> f32[B, 2, T, 4] {
      %kt = transpose(%k) {perm = [0, 1, 3, 2]} : f32[B, 2, 4, T]
      %o = fused(%q, %kt, %v) {kind = "attention", rules = "fuse-attention", flash = true} : f32[B, 2, T, 4]
          body(%0: f32[B, 2, T, 4], %1: f32[B, 2, 4, T], %2: f32[B, 2, T, 4]) {
        %s = matmul(%0, %1) : f32[B, 2, T, T]
        %3 = full() {shape = [], value = 0.5} : f32[]
        %ss = mul(%s, %3) : f32[B, 2, T, T]
        %4 = full() {shape = [], value = -inf} : f32[]
        %5 = iota() {shape = [T, T]} : i64[T, T]
        %6 = iota() {shape = [T, T], axis = 1} : i64[T, T]
        %7 = le(%6, %5) : bool[T, T]
        %sm = where(%7, %ss, %4) : f32[B, 2, T, T]
        %mx = max(%sm) {axes = [-1], keepdims = true} : f32[B, 2, T, 1]
        %dead = eq(%mx, %4) : bool[B, 2, T, 1]
        %8 = full() {shape = [], value = 0.0} : f32[]
        %p = softmax(%sm) : f32[B, 2, T, T]
        %pz = where(%dead, %8, %p) : f32[B, 2, T, T]
        %9 = matmul(%pz, %2) : f32[B, 2, T, 4]
        yield %9
      }
      return %o
    }
    """)


SIMPLE = """
graph @g(%q: f32[3, 5, 4], %k: f32[3, 4, 6], %v: f32[3, 6, 2], %mask: f32[5, 6]) -> f32[3, 5, 2] {
  %s = matmul(%q, %k) : f32[3, 5, 6]
  %sm = add(%s, %mask) : f32[3, 5, 6]
  %p = softmax(%sm) : f32[3, 5, 6]
  %o = matmul(%p, %v) : f32[3, 5, 2]
  return %o
}
"""


@pytest.mark.parametrize("src", [
    # the probabilities are a graph output too (attention weights someone wants to see)
    SIMPLE.replace("-> f32[3, 5, 2] {", "-> f32[3, 5, 2], f32[3, 5, 6] {")
          .replace("return %o", "return %o, %p"),
    # the softmax is over the query axis: not attention's row softmax
    SIMPLE.replace("softmax(%sm) :", "softmax(%sm) {axis = 1} :"),
    # the probabilities are the right operand of the second matmul
    SIMPLE.replace("%mask: f32[5, 6])", "%mask: f32[5, 6], %w: f32[3, 2, 5])")
          .replace("-> f32[3, 5, 2]", "-> f32[3, 2, 6]")
          .replace("%o = matmul(%p, %v) : f32[3, 5, 2]", "%o = matmul(%w, %p) : f32[3, 2, 6]"),
], ids=["scores-escape", "query-axis", "right-operand"])
def test_patterns_that_are_not_flash_attention_are_left_alone(src):
    check_pipeline(src, "fuse-attention", src)


def test_simple_pattern_with_an_additive_mask_is_taken():
    result = check_numerics(parse_air(SIMPLE), "fuse-attention", np.random.default_rng(8))
    assert [n.op for n in result.nodes] == ["fused"]
    assert [n.op for n in result.nodes[0].regions[0].nodes] == ["matmul", "add", "softmax", "matmul"]


@pytest.mark.parametrize(("src", "sizes"), [(OP, {"B": 2, "T": 5}), (PATTERN, {"B": 2, "T": 5})],
                         ids=["op", "pattern"])
def test_numerics_unchanged(src, sizes):
    check_numerics(parse_air(src), "fuse-attention", np.random.default_rng(9), sizes)
