"""cse: equal computations merged, commutative operands, scoping through regions, what must stay."""

import numpy as np

from archir import GraphBuilder, f32
from archir.registry import Trait
from tests.passes.cases import check_numerics, check_pipeline, parse_air, temporary_op


def test_merges_equal_nodes_and_their_users_in_turn():
    check_pipeline(
        """
        graph @g(%x: f32[4]) -> f32[4] {
          %a = exp(%x) : f32[4]
          %b = exp(%x) : f32[4]
          %c = neg(%a) : f32[4]
          %d = neg(%b) : f32[4]
          %e = add(%c, %d) : f32[4]
          return %e
        }
        """,
        "cse",
        """
        graph @g(%x: f32[4]) -> f32[4] {
          %a = exp(%x) : f32[4]
          %c = neg(%a) : f32[4]
          %e = add(%c, %c) : f32[4]
          return %e
        }
        """,
    )


def test_commutative_operands_in_either_order_merge_but_not_for_sub():
    check_pipeline(
        """
        graph @g(%x: f32[4], %y: f32[4]) -> f32[4], f32[4], f32[4], f32[4] {
          %a = add(%x, %y) : f32[4]
          %b = add(%y, %x) : f32[4]
          %c = sub(%x, %y) : f32[4]
          %d = sub(%y, %x) : f32[4]
          return %a, %b, %c, %d
        }
        """,
        "cse",
        """
        graph @g(%x: f32[4], %y: f32[4]) -> f32[4], f32[4], f32[4], f32[4] {
          %a = add(%x, %y) : f32[4]
          %c = sub(%x, %y) : f32[4]
          %d = sub(%y, %x) : f32[4]
          return %a, %a, %c, %d
        }
        """,
    )


def test_attributes_must_be_equal_and_nan_equals_nan():
    check_pipeline(
        """
        graph @g(%x: f32[2, 3]) -> f32[2, 3], f32[2, 3], f32[2, 3], f32[], f32[] {
          %a = gelu(%x) : f32[2, 3]
          %b = gelu(%x) {approximate = "tanh"} : f32[2, 3]
          %c = gelu(%x) {approximate = "none"} : f32[2, 3]
          %n1 = full() {shape = [], value = nan} : f32[]
          %n2 = full() {shape = [], value = nan} : f32[]
          return %a, %b, %c, %n1, %n2
        }
        """,
        "cse",
        """
        graph @g(%x: f32[2, 3]) -> f32[2, 3], f32[2, 3], f32[2, 3], f32[], f32[] {
          %a = gelu(%x) : f32[2, 3]
          %b = gelu(%x) {approximate = "tanh"} : f32[2, 3]
          %n1 = full() {shape = [], value = nan} : f32[]
          return %a, %b, %a, %n1, %n1
        }
        """,
    )


def test_different_inputs_or_ops_are_not_merged():
    src = """
        graph @g(%x: f32[4], %y: f32[4]) -> f32[4], f32[4], f32[4] {
          %a = exp(%x) : f32[4]
          %b = exp(%y) : f32[4]
          %c = log(%x) : f32[4]
          return %a, %b, %c
        }
        """
    check_pipeline(src, "cse", src)


def test_region_reuses_an_equal_node_of_the_enclosing_scope():
    check_pipeline(
        """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3], f32[3] {
          %e = exp(%h) : f32[3]
          %c = scan(%h, %x) {num_carry = 1} : f32[3] body(%s: f32[3], %r: f32[3]) {
            %e2 = exp(%h) : f32[3]
            %p = mul(%r, %s) : f32[3]
            %q = mul(%s, %r) : f32[3]
            %n = add(%p, %e2) : f32[3]
            %m = add(%n, %q) : f32[3]
            yield %m
          }
          return %c, %e
        }
        """,
        "cse",
        """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3], f32[3] {
          %e = exp(%h) : f32[3]
          %c = scan(%h, %x) {num_carry = 1} : f32[3] body(%s: f32[3], %r: f32[3]) {
            %p = mul(%r, %s) : f32[3]
            %n = add(%p, %e) : f32[3]
            %m = add(%n, %p) : f32[3]
            yield %m
          }
          return %c, %e
        }
        """,
    )


def test_never_hoists_out_of_a_region_nor_shares_between_sibling_regions():
    src = """
        graph @g(%p: bool[], %h: f32[3]) -> f32[3], f32[3] {
          %c = cond(%p, %h) : f32[3] then(%a: f32[3]) {
            %t = exp(%h) : f32[3]
            yield %t
          } else(%b: f32[3]) {
            %u = exp(%h) : f32[3]
            yield %u
          }
          %e = exp(%h) : f32[3]
          return %c, %e
        }
        """
    check_pipeline(src, "cse", src)


def test_nodes_with_regions_are_not_merged():
    src = """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3], f32[3] {
          %c = scan(%h, %x) {num_carry = 1} : f32[3] body(%s: f32[3], %r: f32[3]) {
            %n = add(%s, %r) : f32[3]
            yield %n
          }
          %d = scan(%h, %x) {num_carry = 1} : f32[3] body(%s2: f32[3], %r2: f32[3]) {
            %n2 = add(%s2, %r2) : f32[3]
            yield %n2
          }
          return %c, %d
        }
        """
    check_pipeline(src, "cse", src)


def test_random_and_side_effecting_ops_are_never_merged(monkeypatch):
    temporary_op(monkeypatch, "test_only_sample", Trait.RANDOM)
    temporary_op(monkeypatch, "test_only_log", Trait.SIDE_EFFECT)
    src = """
        graph @g(%x: f32[4]) -> f32[], f32[], f32[], f32[] {
          %a = test_only_sample(%x) : f32[]
          %b = test_only_sample(%x) : f32[]
          %c = test_only_log(%x) : f32[]
          %d = test_only_log(%x) : f32[]
          return %a, %b, %c, %d
        }
        """
    check_pipeline(src, "cse", src)


def test_builder_graph_numerics_unchanged(rng):
    b = GraphBuilder("net")
    x = b.input("x", f32[4, 6])
    w = b.param("w", f32[6], rng.standard_normal(6).astype(np.float32))
    h1 = b.tanh(b.mul(x, w))
    h2 = b.tanh(b.mul(w, x))
    t1 = b.transpose(h1, perm=[1, 0])
    t2 = b.transpose(h2, perm=[1, 0])
    b.output(b.add(h1, h2), b.sub(t1, b.neg(t2)))
    graph = b.build()
    result = check_numerics(graph, "cse", rng)
    assert [n.op for n in result.nodes] == ["mul", "tanh", "transpose", "add", "neg", "sub"]


def test_scan_graph_numerics_unchanged(rng):
    src = """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3], f32[5, 3] {
          %k = exp(%h) : f32[3]
          %c, %ys = scan(%h, %x) {num_carry = 1} : f32[3], f32[5, 3] body(%s: f32[3], %r: f32[3]) {
            %k2 = exp(%h) : f32[3]
            %a = mul(%r, %k2) : f32[3]
            %b = mul(%k, %r) : f32[3]
            %n = add(%s, %a) : f32[3]
            %m = sub(%n, %b) : f32[3]
            %o = tanh(%m) : f32[3]
            yield %o, %a
          }
          return %c, %ys
        }
        """
    result = check_numerics(parse_air(src), "cse", rng)
    assert [n.op for n in result.walk()] == ["exp", "scan", "mul", "add", "sub", "tanh"]
