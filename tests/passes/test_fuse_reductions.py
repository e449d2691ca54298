"""fuse-reductions: norms, softmaxes and reductions with their elementwise producers and consumers,
one anchor per group; text in/text out and interpreter numerics before and after (1e-6)."""

import numpy as np
import pytest

from tests.passes.cases import check_numerics, check_pipeline, give_random_params, parse_air

CHAIN = """
graph @g(%x: f32[B, 16], %r: f32[B, 16], %mask: f32[B, 16]) -> f32[B, 16], f32[B, 16], f32[B, 1]
    params(%g1: f32[16], %b1: f32[16], %s: f32[16], %t: f32[16]) {
  %h = add(%x, %r) : f32[B, 16]
  %n = layer_norm(%h, %g1, %b1) : f32[B, 16] @ln
  %m = mul(%n, %s) : f32[B, 16]
  %a = add(%m, %t) : f32[B, 16]
  %u = gelu(%a) {approximate = "tanh"} : f32[B, 16]
  %o = add(%u, %h) : f32[B, 16]
  %z = add(%o, %mask) : f32[B, 16]
  %p = softmax(%z) : f32[B, 16] @sm
  %q = log_softmax(%p) : f32[B, 16]
  %e = exp(%q) : f32[B, 16]
  %sq = mul(%e, %e) : f32[B, 16]
  %tot = sum(%sq) {axes = [1], keepdims = true} : f32[B, 1]
  %rt = sqrt(%tot) : f32[B, 1]
  return %o, %p, %rt
}
"""


def test_anchors_take_their_producers_and_consumers():
    # layer norm: residual add before, scale/bias/GELU/residual after (one group, the bench chain);
    # the mask add feeds the softmax, so it is the softmax's producer rather than the layer norm's
    # consumer; each group holds one anchor; sum takes its square and its sqrt.
    check_pipeline(CHAIN, "fuse-reductions", """
    graph @g(%x: f32[B, 16], %r: f32[B, 16], %mask: f32[B, 16]) -> f32[B, 16], f32[B, 16], f32[B, 1]
        params(%g1: f32[16], %b1: f32[16], %s: f32[16], %t: f32[16]) {
      %o = fused(%x, %r, %g1, %b1, %s, %t) {kind = "reduction", rules = "fuse-reductions"} : f32[B, 16] @ln
          body(%0: f32[B, 16], %1: f32[B, 16], %2: f32[16], %3: f32[16], %4: f32[16], %5: f32[16]) {
        %h = add(%0, %1) : f32[B, 16]
        %n = layer_norm(%h, %2, %3) : f32[B, 16] @ln
        %m = mul(%n, %4) : f32[B, 16]
        %a = add(%m, %5) : f32[B, 16]
        %u = gelu(%a) {approximate = "tanh"} : f32[B, 16]
        %6 = add(%u, %h) : f32[B, 16]
        yield %6
      }
      %p = fused(%o, %mask) {kind = "reduction", rules = "fuse-reductions"} : f32[B, 16] @sm
          body(%7: f32[B, 16], %8: f32[B, 16]) {
        %z = add(%7, %8) : f32[B, 16]
        %9 = softmax(%z) : f32[B, 16] @sm
        yield %9
      }
      %e = fused(%p) {kind = "reduction", rules = "fuse-reductions"} : f32[B, 16] body(%10: f32[B, 16]) {
        %q = log_softmax(%10) : f32[B, 16]
        %11 = exp(%q) : f32[B, 16]
        yield %11
      }
      %rt = fused(%e) {kind = "reduction", rules = "fuse-reductions"} : f32[B, 1] body(%12: f32[B, 16]) {
        %sq = mul(%12, %12) : f32[B, 16]
        %tot = sum(%sq) {axes = [1], keepdims = true} : f32[B, 1]
        %13 = sqrt(%tot) : f32[B, 1]
        yield %13
      }
      return %o, %p, %rt
    }
    """)


NORMS = """
graph @g(%x: f32[B, 4, 6], %y: f32[B, 4, 6]) -> f32[B, 4, 6], f32[B, 4, 6]
    params(%w: f32[6], %mean: f32[4], %var: f32[4]) {
  %d = sub(%x, %y) : f32[B, 4, 6]
  %n = rms_norm(%d, %w) : f32[B, 4, 6] @rms
  %s = silu(%n) : f32[B, 4, 6]
  %b = batch_norm(%y, %mean, %var) : f32[B, 4, 6] @bn
  %k = full() {shape = [], value = 3.0} : f32[]
  %c = minimum(%b, %k) : f32[B, 4, 6]
  return %s, %c
}
"""


def test_rms_norm_and_batch_norm():
    check_pipeline(NORMS, "fuse-reductions", """
    graph @g(%x: f32[B, 4, 6], %y: f32[B, 4, 6]) -> f32[B, 4, 6], f32[B, 4, 6]
        params(%w: f32[6], %mean: f32[4], %var: f32[4]) {
      %s = fused(%x, %y, %w) {kind = "reduction", rules = "fuse-reductions"} : f32[B, 4, 6] @rms
          body(%0: f32[B, 4, 6], %1: f32[B, 4, 6], %2: f32[6]) {
        %d = sub(%0, %1) : f32[B, 4, 6]
        %n = rms_norm(%d, %2) : f32[B, 4, 6] @rms
        %3 = silu(%n) : f32[B, 4, 6]
        yield %3
      }
      %c = fused(%y, %mean, %var) {kind = "reduction", rules = "fuse-reductions"} : f32[B, 4, 6] @bn
          body(%4: f32[B, 4, 6], %5: f32[4], %6: f32[4]) {
        %b = batch_norm(%4, %5, %6) : f32[B, 4, 6] @bn
        %7 = full() {shape = [], value = 3.0} : f32[]
        %8 = minimum(%b, %7) : f32[B, 4, 6]
        yield %8
      }
      return %s, %c
    }
    """)


def test_a_lone_anchor_stays_as_it_is():
    src = """
    graph @g(%x: f32[2, 8]) -> f32[2, 8] {
      %p = softmax(%x) : f32[2, 8]
      return %p
    }
    """
    check_pipeline(src, "fuse-reductions", src)


BROADCAST = """
graph @g(%x: f32[2, N], %v: f32[N]) -> f32[2, N] {
  %e = exp(%v) : f32[N]
  %z = add(%x, %e) : f32[2, N]
  %p = log_softmax(%z) : f32[2, N]
  return %p
}
"""


def test_a_costly_broadcast_producer_is_not_recomputed_per_row():
    # exp of a row of unknown length would be recomputed for every row of %z: it stays outside
    check_pipeline(BROADCAST, "fuse-reductions", """
    graph @g(%x: f32[2, N], %v: f32[N]) -> f32[2, N] {
      %e = exp(%v) : f32[N]
      %p = fused(%x, %e) {kind = "reduction", rules = "fuse-reductions"} : f32[2, N]
          body(%0: f32[2, N], %1: f32[N]) {
        %z = add(%0, %1) : f32[2, N]
        %2 = log_softmax(%z) : f32[2, N]
        yield %2
      }
      return %p
    }
    """)


@pytest.mark.parametrize(("src", "sizes"), [(CHAIN, {"B": 3}), (NORMS, {"B": 2}), (BROADCAST, {"N": 5})],
                         ids=["chain", "norms", "broadcast"])
def test_numerics_unchanged(src, sizes):
    graph = give_random_params(parse_air(src), np.random.default_rng(6))
    if "var" in graph.param_data:  # a variance must be positive
        graph.param_data["var"] = np.abs(graph.param_data["var"]) + 0.5
    check_numerics(graph, "fuse-reductions", np.random.default_rng(7), sizes)
