"""fuse-elementwise: chains, several consumers, convexity, broadcast producers and the cost model,
regions, the size limit; text in/text out and interpreter numerics before and after (1e-6)."""

import numpy as np
import pytest
from archir.passes import fusion_cost

from archir.pass_manager import run_pipeline
from archir.printer import print_graph
from tests.passes.cases import check_numerics, check_pipeline, parse_air

CHAIN = """
graph @g(%x: f32[4, 8], %y: f32[4, 8], %b: f32[8], %w: f32[8, 8]) -> f32[4, 8], f32[4, 8] {
  %a = mul(%x, %y) : f32[4, 8]
  %c = exp(%a) : f32[4, 8]
  %d = add(%c, %b) : f32[4, 8]
  %e = matmul(%a, %w) : f32[4, 8]
  %s = sum(%d) {axes = [1], keepdims = true} : f32[4, 1]
  %f = sub(%d, %s) : f32[4, 8]
  %h = neg(%f) : f32[4, 8]
  return %h, %e
}
"""


def test_chain_with_a_shared_value_and_a_path_through_a_reduction():
    # %a is read by the matmul too: it becomes a second result, computed once. %f cannot join the
    # first group: %d -> sum -> %f leaves the group and comes back, so it starts a group of its own.
    check_pipeline(CHAIN, "fuse-elementwise", """
    graph @g(%x: f32[4, 8], %y: f32[4, 8], %b: f32[8], %w: f32[8, 8]) -> f32[4, 8], f32[4, 8] {
      %a, %d = fused(%x, %y, %b) {kind = "elementwise", rules = "fuse-elementwise"} : f32[4, 8], f32[4, 8]
          body(%0: f32[4, 8], %1: f32[4, 8], %2: f32[8]) {
        %3 = mul(%0, %1) : f32[4, 8]
        %c = exp(%3) : f32[4, 8]
        %4 = add(%c, %2) : f32[4, 8]
        yield %3, %4
      }
      %e = matmul(%a, %w) : f32[4, 8]
      %s = sum(%d) {axes = [1], keepdims = true} : f32[4, 1]
      %h = fused(%d, %s) {kind = "elementwise", rules = "fuse-elementwise"} : f32[4, 8]
          body(%5: f32[4, 8], %6: f32[4, 1]) {
        %f = sub(%5, %6) : f32[4, 8]
        %7 = neg(%f) : f32[4, 8]
        yield %7
      }
      return %h, %e
    }
    """)


COPIES = """
graph @g(%x: f32[B, C], %y: f32[B, C], %b: f32[C], %w: f32[C, C]) -> f32[B, C] {
  %nb = neg(%b) : f32[C]
  %eb = exp(%b) : f32[C]
  %t = add(%x, %y) : f32[B, C]
  %u = exp(%t) : f32[B, C]
  %u2 = add(%u, %nb) : f32[B, C]
  %m = matmul(%u2, %w) : f32[B, C]
  %v = mul(%t, %m) : f32[B, C]
  %v2 = add(%v, %nb) : f32[B, C]
  %v3 = mul(%v2, %eb) : f32[B, C]
  %k = full() {shape = [], value = 2.0} : f32[]
  %v4 = mul(%v3, %k) : f32[B, C]
  return %v4
}
"""


def test_cost_model_copies_cheap_producers_and_shares_costly_ones():
    # neg(%b) (one instruction per element) is read by both groups: recomputed in each rather
    # than written and read back. exp(%b), of unknown size, is not cheap: it stays a kernel of its
    # own rather than be recomputed for every row. %t is in the first group: computed once there
    # and written out for the second. The scalar full is free and is copied.
    check_pipeline(COPIES, "fuse-elementwise", """
    graph @g(%x: f32[B, C], %y: f32[B, C], %b: f32[C], %w: f32[C, C]) -> f32[B, C] {
      %eb = exp(%b) : f32[C]
      %t, %u2 = fused(%b, %x, %y) {kind = "elementwise", rules = "fuse-elementwise"} : f32[B, C], f32[B, C]
          body(%0: f32[C], %1: f32[B, C], %2: f32[B, C]) {
        %3 = neg(%0) : f32[C]
        %4 = add(%1, %2) : f32[B, C]
        %u = exp(%4) : f32[B, C]
        %5 = add(%u, %3) : f32[B, C]
        yield %4, %5
      }
      %m = matmul(%u2, %w) : f32[B, C]
      %v4 = fused(%b, %t, %m, %eb) {kind = "elementwise", rules = "fuse-elementwise"} : f32[B, C]
          body(%6: f32[C], %7: f32[B, C], %8: f32[B, C], %9: f32[C]) {
        %10 = neg(%6) : f32[C]
        %v = mul(%7, %8) : f32[B, C]
        %v2 = add(%v, %10) : f32[B, C]
        %v3 = mul(%v2, %9) : f32[B, C]
        %11 = full() {shape = [], value = 2.0} : f32[]
        %12 = mul(%v3, %11) : f32[B, C]
        yield %12
      }
      return %v4
    }
    """)


def test_a_cheap_producer_read_by_more_groups_than_allowed_is_shared(monkeypatch):
    monkeypatch.setattr(fusion_cost, "MAX_COPIES", 1)
    graph = check_numerics(parse_air(COPIES), "fuse-elementwise", np.random.default_rng(0),
                           {"B": 3, "C": 5})
    assert "%nb = neg(%b) : f32[C]" in print_graph(graph)
    assert print_graph(graph).count("= neg(") == 1


def test_a_copy_never_feeds_a_contraction():
    # relu(%w) is small and read only by a group, but its matmul reads each element many times:
    # a copy would be recomputed per use, so it stays a kernel of its own
    src = """
    graph @g(%x: f32[4, 4], %w: f32[4, 4]) -> f32[4, 4] {
      %r = relu(%w) : f32[4, 4]
      %m = matmul(%x, %r) : f32[4, 4]
      %e = exp(%m) : f32[4, 4]
      return %e
    }
    """
    check_pipeline(src, "fuse-epilogue", """
    graph @g(%x: f32[4, 4], %w: f32[4, 4]) -> f32[4, 4] {
      %r = relu(%w) : f32[4, 4]
      %e = fused(%x, %r) {kind = "gemm_epilogue", rules = "fuse-epilogue"} : f32[4, 4]
          body(%0: f32[4, 4], %1: f32[4, 4]) {
        %m = matmul(%0, %1) : f32[4, 4]
        %2 = exp(%m) : f32[4, 4]
        yield %2
      }
      return %e
    }
    """)


SCAN = """
graph @g(%h0: f32[B, 4], %xs: f32[T, B, 4], %s: f32[B, 4]) -> f32[B, 4] {
  %sc = sigmoid(%s) : f32[B, 4]
  %h, %ys = scan(%h0, %xs) {num_carry = 1} : f32[B, 4], f32[T, B, 4] body(%c: f32[B, 4], %x: f32[B, 4]) {
    %a = add(%c, %x) : f32[B, 4]
    %m = mul(%a, %sc) : f32[B, 4]
    %t = tanh(%m) : f32[B, 4]
    yield %t, %t
  }
  %o = neg(%h) : f32[B, 4]
  %o2 = mul(%o, %sc) : f32[B, 4]
  return %o2
}
"""


def test_groups_form_inside_regions_and_never_across_their_boundary():
    # The step's ops form a group inside the body, reading %sc from outside as an input; %sc does
    # not join the group after the scan, because the scan reads it in between.
    check_pipeline(SCAN, "fuse-elementwise", """
    graph @g(%h0: f32[B, 4], %xs: f32[T, B, 4], %s: f32[B, 4]) -> f32[B, 4] {
      %sc = sigmoid(%s) : f32[B, 4]
      %h, %ys = scan(%h0, %xs) {num_carry = 1} : f32[B, 4], f32[T, B, 4] body(%c: f32[B, 4], %x: f32[B, 4]) {
        %t = fused(%c, %x, %sc) {kind = "elementwise", rules = "fuse-elementwise"} : f32[B, 4]
            body(%0: f32[B, 4], %1: f32[B, 4], %2: f32[B, 4]) {
          %a = add(%0, %1) : f32[B, 4]
          %m = mul(%a, %2) : f32[B, 4]
          %3 = tanh(%m) : f32[B, 4]
          yield %3
        }
        yield %t, %t
      }
      %o2 = fused(%h, %sc) {kind = "elementwise", rules = "fuse-elementwise"} : f32[B, 4]
          body(%4: f32[B, 4], %5: f32[B, 4]) {
        %o = neg(%4) : f32[B, 4]
        %6 = mul(%o, %5) : f32[B, 4]
        yield %6
      }
      return %o2
    }
    """)


def test_size_limit_splits_long_chains(monkeypatch):
    monkeypatch.setattr(fusion_cost, "MAX_GROUP_NODES", 3)
    src = """
    graph @g(%x: f32[N]) -> f32[N] {
      %a = exp(%x) : f32[N]
      %b = neg(%a) : f32[N]
      %c = tanh(%b) : f32[N]
      %d = abs(%c) : f32[N]
      %e = sqrt(%d) : f32[N]
      return %e
    }
    """
    result = check_numerics(parse_air(src), "fuse-elementwise", np.random.default_rng(1), {"N": 6})
    assert [len(n.regions[0].nodes) for n in result.nodes] == [3, 2]


def test_lone_ops_and_existing_groups_are_left_alone():
    src = """
    graph @g(%x: f32[4], %w: f32[4, 4]) -> f32[4] {
      %a = exp(%x) : f32[4]
      %m = matmul(%a, %w) : f32[4]
      %b = neg(%m) : f32[4]
      return %b
    }
    """
    check_pipeline(src, "fuse-elementwise", src)


def test_running_twice_changes_nothing():
    once = print_graph(run_pipeline(parse_air(CHAIN), "fuse-elementwise"))
    check_pipeline(CHAIN, "fuse-elementwise,fuse-elementwise", once)


@pytest.mark.parametrize(("src", "sizes"), [(CHAIN, {}), (COPIES, {"B": 3, "C": 5}),
                                            (SCAN, {"B": 2, "T": 4})])
def test_numerics_unchanged(src, sizes):
    check_numerics(parse_air(src), "fuse-elementwise", np.random.default_rng(3), sizes)


def test_canonicalize_after_fusion_keeps_groups_closed():
    # cse merges equal nodes inside a body, never with an equal node outside it (the body may read
    # only its arguments): the outer %k must not replace the copy of %k2 inside.
    src = """
    graph @g(%x: f32[N]) -> f32[N], f32[N] {
      %k = full() {shape = [], value = 2.0} : f32[]
      %a = mul(%x, %k) : f32[N]
      %e = exp(%x) : f32[N]
      %k2 = full() {shape = [], value = 2.0} : f32[]
      %b = mul(%e, %k2) : f32[N]
      %c = mul(%e, %k2) : f32[N]
      %d = add(%b, %c) : f32[N]
      return %a, %d
    }
    """
    check_pipeline(src, "fuse-elementwise,canonicalize", """
    graph @g(%x: f32[N]) -> f32[N], f32[N] {
      %k = full() {shape = [], value = 2.0} : f32[]
      %a = mul(%x, %k) : f32[N]
      %d = fused(%x) {kind = "elementwise", rules = "fuse-elementwise"} : f32[N] body(%0: f32[N]) {
        %e = exp(%0) : f32[N]
        %1 = full() {shape = [], value = 2.0} : f32[]
        %b = mul(%e, %1) : f32[N]
        %2 = add(%b, %b) : f32[N]
        yield %2
      }
      return %a, %d
    }
    """)
