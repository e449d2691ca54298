"""fold-layout: views folded into the groups and lone kernels that read them, views that must stay;
text in/text out and interpreter numerics before and after (1e-6)."""

import numpy as np
import pytest

from tests.passes.cases import check_numerics, check_pipeline, give_random_params, parse_air

HEADS = """
graph @g(%x: f32[B, T, 8], %r: f32[B, T, 8]) -> f32[B, T, 8], f32[B, 2, T, 4]
    params(%wq: f32[8, 8], %wo: f32[8, 8]) {
  %q = linear(%x, %wq) : f32[B, T, 8] @q_proj
  %q4 = reshape(%q) {shape = [B, T, 2, 4]} : f32[B, T, 2, 4]
  %qh = transpose(%q4) {perm = [0, 2, 1, 3]} : f32[B, 2, T, 4]
  %a = attention(%qh, %qh, %qh) {causal = true} : f32[B, 2, T, 4] @attn
  %at = transpose(%a) {perm = [0, 2, 1, 3]} : f32[B, T, 2, 4]
  %am = reshape(%at) {shape = [B, T, 8]} : f32[B, T, 8]
  %o = linear(%am, %wo) : f32[B, T, 8] @out_proj
  %res = add(%o, %r) : f32[B, T, 8]
  return %res, %qh
}
"""


def test_merging_heads_folds_into_the_output_projection_group():
    # transpose+reshape after attention fold into the epilogue group as the way it reads its
    # input; the split into heads stays, because %qh is a graph output and is stored anyway.
    check_pipeline(HEADS, "fuse-attention,fuse-epilogue,fold-layout", """
    graph @g(%x: f32[B, T, 8], %r: f32[B, T, 8]) -> f32[B, T, 8], f32[B, 2, T, 4]
        params(%wq: f32[8, 8], %wo: f32[8, 8]) {
      %q = linear(%x, %wq) : f32[B, T, 8] @q_proj
      %q4 = reshape(%q) {shape = [B, T, 2, 4]} : f32[B, T, 2, 4]
      %qh = transpose(%q4) {perm = [0, 2, 1, 3]} : f32[B, 2, T, 4]
      %a = fused(%qh) {kind = "attention", rules = "fuse-attention", flash = true} : f32[B, 2, T, 4] @attn
          body(%0: f32[B, 2, T, 4]) {
        %1 = attention(%0, %0, %0) {causal = true} : f32[B, 2, T, 4] @attn
        yield %1
      }
      %res = fused(%a, %wo, %r) {kind = "gemm_epilogue", rules = "fuse-epilogue,fold-layout"} : f32[B, T,
          8] @out_proj
          body(%2: f32[B, 2, T, 4], %3: f32[8, 8], %4: f32[B, T, 8]) {
        %5 = transpose(%2) {perm = [0, 2, 1, 3]} : f32[B, T, 2, 4]
        %6 = reshape(%5) {shape = [B, T, 8]} : f32[B, T, 8]
        %o = linear(%6, %3) : f32[B, T, 8] @out_proj
        %7 = add(%o, %4) : f32[B, T, 8]
        yield %7
      }
      return %res, %qh
    }
    """)


def test_split_heads_fold_into_attention_when_nothing_else_reads_them():
    src = HEADS.replace(", f32[B, 2, T, 4]\n", "\n").replace("return %res, %qh", "return %res")
    result = check_pipeline(src, "fuse-attention,fuse-epilogue,fold-layout", """
    graph @g(%x: f32[B, T, 8], %r: f32[B, T, 8]) -> f32[B, T, 8]
        params(%wq: f32[8, 8], %wo: f32[8, 8]) {
      %q = linear(%x, %wq) : f32[B, T, 8] @q_proj
      %a = fused(%q) {kind = "attention", rules = "fuse-attention,fold-layout", flash = true} : f32[B, 2,
          T, 4] @attn
          body(%0: f32[B, T, 8]) {
        %1 = reshape(%0) {shape = [B, T, 2, 4]} : f32[B, T, 2, 4]
        %2 = transpose(%1) {perm = [0, 2, 1, 3]} : f32[B, 2, T, 4]
        %3 = attention(%2, %2, %2) {causal = true} : f32[B, 2, T, 4] @attn
        yield %3
      }
      %res = fused(%a, %wo, %r) {kind = "gemm_epilogue", rules = "fuse-epilogue,fold-layout"} : f32[B, T,
          8] @out_proj
          body(%4: f32[B, 2, T, 4], %5: f32[8, 8], %6: f32[B, T, 8]) {
        %7 = transpose(%4) {perm = [0, 2, 1, 3]} : f32[B, T, 2, 4]
        %8 = reshape(%7) {shape = [B, T, 8]} : f32[B, T, 8]
        %o = linear(%8, %5) : f32[B, T, 8] @out_proj
        %9 = add(%o, %6) : f32[B, T, 8]
        yield %9
      }
      return %res
    }
    """)
    assert len(result.nodes) == 3


LONE = """
graph @g(%x: f32[B, 4, 4], %y: f32[B, 16]) -> f32[B, 32], f32[B, 16], f32[B, 16]
    params(%w: f32[16, 16]) {
  %f = reshape(%x) {shape = [B, 16]} : f32[B, 16]
  %l = linear(%f, %w) : f32[B, 16] @fc
  %c = concat(%f, %y) {axis = 1} : f32[B, 32]
  %t = transpose(%x) {perm = [0, 2, 1]} : f32[B, 4, 4]
  %tf = reshape(%t) {shape = [B, 16]} : f32[B, 16]
  %e = exp(%tf) : f32[B, 16]
  return %c, %l, %e
}
"""


def test_views_before_a_lone_kernel_make_a_layout_group_unless_stored_anyway():
    # %f is also read by concat, which needs it in memory: folding it into the linear saves nothing.
    check_pipeline(LONE, "fold-layout", """
    graph @g(%x: f32[B, 4, 4], %y: f32[B, 16]) -> f32[B, 32], f32[B, 16], f32[B, 16]
        params(%w: f32[16, 16]) {
      %f = reshape(%x) {shape = [B, 16]} : f32[B, 16]
      %l = linear(%f, %w) : f32[B, 16] @fc
      %c = concat(%f, %y) {axis = 1} : f32[B, 32]
      %e = fused(%x) {kind = "layout", rules = "fold-layout"} : f32[B, 16] body(%0: f32[B, 4, 4]) {
        %1 = transpose(%0) {perm = [0, 2, 1]} : f32[B, 4, 4]
        %2 = reshape(%1) {shape = [B, 16]} : f32[B, 16]
        %3 = exp(%2) : f32[B, 16]
        yield %3
      }
      return %c, %l, %e
    }
    """)


SHARED = """
graph @g(%x: f32[B, 3, 4]) -> f32[B, 4, 3], f32[B, 4]
    params(%w: f32[3, 3]) {
  %t = transpose(%x) {perm = [0, 2, 1]} : f32[B, 4, 3]
  %m = matmul(%t, %w) : f32[B, 4, 3]
  %s = sum(%t) {axes = [2]} : f32[B, 4]
  return %m, %s
}
"""


def test_a_view_read_by_two_kernels_is_folded_into_both():
    check_pipeline(SHARED, "fold-layout", """
    graph @g(%x: f32[B, 3, 4]) -> f32[B, 4, 3], f32[B, 4]
        params(%w: f32[3, 3]) {
      %m = fused(%x, %w) {kind = "layout", rules = "fold-layout"} : f32[B, 4, 3]
          body(%0: f32[B, 3, 4], %1: f32[3, 3]) {
        %2 = transpose(%0) {perm = [0, 2, 1]} : f32[B, 4, 3]
        %3 = matmul(%2, %1) : f32[B, 4, 3]
        yield %3
      }
      %s = fused(%x) {kind = "layout", rules = "fold-layout"} : f32[B, 4] body(%4: f32[B, 3, 4]) {
        %5 = transpose(%4) {perm = [0, 2, 1]} : f32[B, 4, 3]
        %6 = sum(%5) {axes = [2]} : f32[B, 4]
        yield %6
      }
      return %m, %s
    }
    """)


@pytest.mark.parametrize(("src", "pipeline", "sizes"), [
    (HEADS, "fuse-attention,fuse-epilogue,fold-layout", {"B": 2, "T": 3}),
    (LONE, "fold-layout", {"B": 2}),
    (SHARED, "fold-layout", {"B": 3}),
], ids=["heads", "lone", "shared"])
def test_numerics_unchanged(src, pipeline, sizes):
    graph = give_random_params(parse_air(src), np.random.default_rng(10))
    check_numerics(graph, pipeline, np.random.default_rng(11), sizes)
