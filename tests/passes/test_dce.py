"""dce: dead nodes at every depth, unused parameters, side effects kept; outputs unchanged."""

import numpy as np

from archir import GraphBuilder, f32
from archir.ir import Graph
from archir.pass_manager import run_pipeline
from archir.registry import Trait
from tests.passes.cases import check_numerics, check_pipeline, give_random_params, parse_air, temporary_op


def test_removes_a_dead_chain():
    check_pipeline(
        """
        graph @g(%x: f32[4]) -> f32[4] {
          %a = exp(%x) : f32[4]
          %b = log(%a) : f32[4]
          %c = neg(%x) : f32[4]
          return %c
        }
        """,
        "dce",
        """
        graph @g(%x: f32[4]) -> f32[4] {
          %c = neg(%x) : f32[4]
          return %c
        }
        """,
    )


def test_keeps_everything_that_is_read_and_unused_inputs():
    src = """
        graph @g(%x: f32[4], %unused: f32[2]) -> f32[4], f32[4] {
          %a = exp(%x) : f32[4]
          %b = add(%a, %x) : f32[4]
          return %b, %a
        }
        """
    check_pipeline(src, "dce", src)


def test_dead_nodes_inside_a_scan_body_and_what_only_they_read():
    check_pipeline(
        """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3] {
          %k = exp(%h) : f32[3]
          %c, %ys = scan(%h, %x) {num_carry = 1} : f32[3], f32[5, 3] body(%s: f32[3], %r: f32[3]) {
            %dead = mul(%r, %k) : f32[3]
            %deader = neg(%dead) : f32[3]
            %n = add(%s, %r) : f32[3]
            yield %n, %n
          }
          return %c
        }
        """,
        "dce",
        """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3] {
          %c, %ys = scan(%h, %x) {num_carry = 1} : f32[3], f32[5, 3] body(%s: f32[3], %r: f32[3]) {
            %n = add(%s, %r) : f32[3]
            yield %n, %n
          }
          return %c
        }
        """,
    )


def test_a_dead_scan_goes_with_the_values_it_captured():
    check_pipeline(
        """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3] {
          %k = exp(%h) : f32[3]
          %c = scan(%h, %x) {num_carry = 1} : f32[3] body(%s: f32[3], %r: f32[3]) {
            %n = mul(%s, %k) : f32[3]
            yield %n
          }
          %o = neg(%h) : f32[3]
          return %o
        }
        """,
        "dce",
        """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3] {
          %o = neg(%h) : f32[3]
          return %o
        }
        """,
    )


def test_values_read_only_by_a_live_region_stay():
    src = """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3] {
          %k = exp(%h) : f32[3]
          %c = scan(%h, %x) {num_carry = 1} : f32[3] body(%s: f32[3], %r: f32[3]) {
            %n = mul(%s, %k) : f32[3]
            yield %n
          }
          return %c
        }
        """
    check_pipeline(src, "dce", src)


def test_drops_unused_parameters_and_their_data():
    src = """
        graph @g(%x: f32[4]) -> f32[4]
            params(%w: f32[4], %v: f32[4], %u: f32[4]) {
          %a = mul(%x, %w) : f32[4]
          %b = mul(%x, %v) : f32[4]
          return %a
        }
        """
    graph = give_random_params(parse_air(src), np.random.default_rng(0))
    result = run_pipeline(graph, "dce")
    assert [p.name for p in result.params] == ["w"]
    assert list(result.param_data) == ["w"]


def test_side_effects_stay_even_unread_at_any_depth(monkeypatch):
    temporary_op(monkeypatch, "test_only_record", Trait.SIDE_EFFECT)
    src = """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3] {
          %r0 = test_only_record(%h) : f32[]
          %c = scan(%h, %x) {num_carry = 1} : f32[3] body(%s: f32[3], %r: f32[3]) {
            %e = test_only_record(%r) : f32[]
            yield %s
          }
          %o = neg(%h) : f32[3]
          return %o
        }
        """
    check_pipeline(src, "dce", src)


def _builder_graph(rng: np.random.Generator) -> Graph:
    b = GraphBuilder("net")
    x = b.input("x", f32[4, 6])
    w = b.param("w", f32[6], rng.standard_normal(6).astype(np.float32))
    unused = b.param("unused", f32[6], rng.standard_normal(6).astype(np.float32))
    h = b.mul(x, w)
    b.exp(b.add(h, unused))  # dead
    b.output(b.tanh(h), b.neg(x))
    return b.build()


def test_builder_graph_numerics_unchanged(rng):
    graph = _builder_graph(rng)
    result = check_numerics(graph, "dce", rng)
    assert [n.op for n in result.nodes] == ["mul", "tanh", "neg"]
    assert [p.name for p in result.params] == ["w"]


def test_scan_graph_numerics_unchanged(rng):
    src = """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3], f32[5, 3] {
          %k = exp(%h) : f32[3]
          %c, %ys = scan(%h, %x) {num_carry = 1} : f32[3], f32[5, 3] body(%s: f32[3], %r: f32[3]) {
            %dead = mul(%r, %k) : f32[3]
            %n = add(%s, %r) : f32[3]
            %m = tanh(%n) : f32[3]
            yield %m, %n
          }
          %unused = neg(%c) : f32[3]
          return %c, %ys
        }
        """
    result = check_numerics(parse_air(src), "dce", rng)
    assert sum(1 for _ in result.walk()) == 3
