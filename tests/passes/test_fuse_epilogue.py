"""fuse-epilogue: matmul/linear/conv with bias, scale, activation and residual ops that follow;
where the chain stops; text in/text out and interpreter numerics before and after (1e-6)."""

import re
from pathlib import Path

import numpy as np
import pytest

from tests.passes.cases import check_numerics, check_pipeline, give_random_params, parse_air
from tests.passes.test_fuse_reductions import BROADCAST

MLP = """
graph @g(%x: f32[B, 8], %r: f32[B, 4]) -> f32[B, 4], f32[B, 4], f32[B, 8]
    params(%w: f32[8, 4], %b: f32[4], %w2: f32[8, 4], %w3: f32[4, 8]) {
  %m = matmul(%x, %w) : f32[B, 4] @fc
  %y = add(%m, %b) : f32[B, 4]
  %k = full() {shape = [], value = 0.5} : f32[]
  %s = mul(%y, %k) : f32[B, 4]
  %a = relu(%s) : f32[B, 4]
  %z = add(%a, %r) : f32[B, 4]
  %l = linear(%z, %w2) : f32[B, 8] @proj
  %g = gelu(%l) : f32[B, 8]
  %n = neg(%g) : f32[B, 8]
  %l2 = linear(%g, %w3) : f32[B, 4]
  %o = add(%l2, %r) : f32[B, 4]
  return %z, %o, %n
}
"""


def test_bias_scale_activation_and_residual_follow_the_contraction():
    # The first chain runs to %z (a graph output); the second stops at %g, which two ops read:
    # %g is the group's result, and neg stays outside. The scalar 0.5 is copied in.
    check_pipeline(MLP, "fuse-epilogue", """
    graph @g(%x: f32[B, 8], %r: f32[B, 4]) -> f32[B, 4], f32[B, 4], f32[B, 8]
        params(%w: f32[8, 4], %b: f32[4], %w2: f32[8, 4], %w3: f32[4, 8]) {
      %z = fused(%x, %w, %b, %r) {kind = "gemm_epilogue", rules = "fuse-epilogue"} : f32[B, 4] @fc
          body(%0: f32[B, 8], %1: f32[8, 4], %2: f32[4], %3: f32[B, 4]) {
        %m = matmul(%0, %1) : f32[B, 4] @fc
        %y = add(%m, %2) : f32[B, 4]
        %4 = full() {shape = [], value = 0.5} : f32[]
        %s = mul(%y, %4) : f32[B, 4]
        %a = relu(%s) : f32[B, 4]
        %5 = add(%a, %3) : f32[B, 4]
        yield %5
      }
      %g = fused(%z, %w2) {kind = "gemm_epilogue", rules = "fuse-epilogue"} : f32[B, 8] @proj
          body(%6: f32[B, 4], %7: f32[8, 4]) {
        %l = linear(%6, %7) : f32[B, 8] @proj
        %8 = gelu(%l) : f32[B, 8]
        yield %8
      }
      %n = neg(%g) : f32[B, 8]
      %o = fused(%g, %w3, %r) {kind = "gemm_epilogue", rules = "fuse-epilogue"} : f32[B, 4]
          body(%9: f32[B, 8], %10: f32[4, 8], %11: f32[B, 4]) {
        %l2 = linear(%9, %10) : f32[B, 4]
        %12 = add(%l2, %11) : f32[B, 4]
        yield %12
      }
      return %z, %o, %n
    }
    """)


CONV = """
graph @g(%x: f32[B, 3, 8, 8], %skip: f32[B, 4, 8, 8]) -> f32[B, 4, 8, 8]
    params(%w: f32[4, 3, 3, 3], %mean: f32[4], %var: f32[4], %gamma: f32[4], %beta: f32[4]) {
  %c = conv2d(%x, %w) {padding = [1, 1]} : f32[B, 4, 8, 8] @conv
  %n = batch_norm(%c, %mean, %var, %gamma, %beta) : f32[B, 4, 8, 8] @bn
  %s = add(%n, %skip) : f32[B, 4, 8, 8]
  %r = relu(%s) : f32[B, 4, 8, 8]
  return %r
}
"""


def test_convolution_takes_inference_batch_norm_residual_and_relu():
    check_pipeline(CONV, "fuse-epilogue", """
    graph @g(%x: f32[B, 3, 8, 8], %skip: f32[B, 4, 8, 8]) -> f32[B, 4, 8, 8]
        params(%w: f32[4, 3, 3, 3], %mean: f32[4], %var: f32[4], %gamma: f32[4], %beta: f32[4]) {
      %r = fused(%x, %w, %mean, %var, %gamma, %beta, %skip) {kind = "gemm_epilogue",
          rules = "fuse-epilogue"} : f32[B, 4, 8, 8] @conv
          body(%0: f32[B, 3, 8, 8], %1: f32[4, 3, 3, 3], %2: f32[4], %3: f32[4], %4: f32[4], %5: f32[4],
              %6: f32[B, 4, 8, 8]) {
        %c = conv2d(%0, %1) {padding = [1, 1]} : f32[B, 4, 8, 8] @conv
        %n = batch_norm(%c, %2, %3, %4, %5) : f32[B, 4, 8, 8] @bn
        %s = add(%n, %6) : f32[B, 4, 8, 8]
        %7 = relu(%s) : f32[B, 4, 8, 8]
        yield %7
      }
      return %r
    }
    """)


@pytest.mark.parametrize("src", [
    # the product is read twice: fusing either reader would not save writing it
    """
    graph @g(%x: f32[2, 4], %w: f32[4, 4]) -> f32[2, 4] {
      %m = matmul(%x, %w) : f32[2, 4]
      %a = relu(%m) : f32[2, 4]
      %b = add(%m, %a) : f32[2, 4]
      return %b
    }
    """,
    # batch_norm after a matmul is a normalization for fuse-reductions, not an epilogue
    """
    graph @g(%x: f32[2, 4], %w: f32[4, 4], %mean: f32[4], %var: f32[4]) -> f32[2, 4] {
      %m = matmul(%x, %w) : f32[2, 4]
      %n = batch_norm(%m, %mean, %var) : f32[2, 4]
      return %n
    }
    """,
    # a reader of another shape (a broadcasting add) is not an epilogue of this product
    """
    graph @g(%x: f32[2, 4], %w: f32[4, 1], %y: f32[2, 4]) -> f32[2, 4] {
      %m = matmul(%x, %w) : f32[2, 1]
      %a = add(%m, %y) : f32[2, 4]
      return %a
    }
    """,
], ids=["shared-product", "batch-norm-after-matmul", "broadcast-reader"])
def test_chains_that_are_not_epilogues_are_left_alone(src):
    check_pipeline(src, "fuse-epilogue", src)


@pytest.mark.parametrize(("src", "sizes"), [(MLP, {"B": 3}), (CONV, {"B": 2})], ids=["mlp", "conv"])
def test_numerics_unchanged(src, sizes):
    graph = give_random_params(parse_air(src), np.random.default_rng(4))
    if "var" in graph.param_data:  # a variance must be positive
        graph.param_data["var"] = np.abs(graph.param_data["var"]) + 0.5
    result = check_numerics(graph, "fuse-epilogue", np.random.default_rng(5), sizes)
    assert result.nodes[0].op == "fused"


def test_the_fusion_example_in_docs_passes_md_is_what_the_pass_prints():
    doc = (Path(__file__).parents[2] / "docs" / "passes.md").read_text()
    section = doc[doc.index("## Fusion"):doc.index("## Memory planning")]
    before, after, broadcast = re.findall(r"```air\n(.*?)```", section, flags=re.S)
    check_pipeline(before, "fuse-epilogue", after)
    check_pipeline(BROADCAST, "fuse-reductions", broadcast)

