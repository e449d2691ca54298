"""specialize-shapes: sizes substituted in every type and DIMS attribute, and the errors it gives."""

import numpy as np
import pytest

from archir import GraphBuilder, PassError, f32
from archir.pass_manager import run_pipeline
from tests.passes.cases import check_numerics, check_pipeline, give_random_params, parse_air

_SRC = """
    graph @g(%x: f32[B, T, 4], %y: f32[T]) -> f32[B*T, 4], f32[T + 1], f32[B]
        params(%w: f32[4]) {
      %a = mul(%x, %w) : f32[B, T, 4]
      %r = reshape(%a) {shape = [B*T, -1]} : f32[B*T, 4]
      %one = full() {shape = [1], value = 1.0} : f32[1]
      %c = concat(%y, %one) {axis = 0} : f32[T + 1]
      %z = full() {shape = [B], value = 0.0} : f32[B]
      return %r, %c, %z
    }
    """


def test_binds_every_symbol_in_types_params_and_dims_attributes():
    check_pipeline(
        _SRC,
        "specialize-shapes{B=2,T=3}",
        """
        graph @g(%x: f32[2, 3, 4], %y: f32[3]) -> f32[6, 4], f32[4], f32[2]
            params(%w: f32[4]) {
          %a = mul(%x, %w) : f32[2, 3, 4]
          %r = reshape(%a) {shape = [6, -1]} : f32[6, 4]
          %one = full() {shape = [1], value = 1.0} : f32[1]
          %c = concat(%y, %one) {axis = 0} : f32[4]
          %z = full() {shape = [2], value = 0.0} : f32[2]
          return %r, %c, %z
        }
        """,
    )


def test_symbols_left_unbound_stay_symbolic():
    check_pipeline(
        _SRC,
        "specialize-shapes{T=5}",
        """
        graph @g(%x: f32[B, 5, 4], %y: f32[5]) -> f32[5*B, 4], f32[6], f32[B]
            params(%w: f32[4]) {
          %a = mul(%x, %w) : f32[B, 5, 4]
          %r = reshape(%a) {shape = [5*B, -1]} : f32[5*B, 4]
          %one = full() {shape = [1], value = 1.0} : f32[1]
          %c = concat(%y, %one) {axis = 0} : f32[6]
          %z = full() {shape = [B], value = 0.0} : f32[B]
          return %r, %c, %z
        }
        """,
    )


def test_no_sizes_is_a_no_op():
    check_pipeline(_SRC, "specialize-shapes", _SRC)


def test_region_arguments_and_results_are_specialised():
    check_pipeline(
        """
        graph @g(%x: f32[T, B, D], %h: f32[B, D]) -> f32[B, D], f32[T, B, D] {
          %c, %ys = scan(%h, %x) {num_carry = 1} : f32[B, D], f32[T, B, D]
              body(%s: f32[B, D], %r: f32[B, D]) {
            %n = add(%s, %r) : f32[B, D]
            %f = full() {shape = [B, 1], value = 0.5} : f32[B, 1]
            %m = mul(%n, %f) : f32[B, D]
            yield %m, %n
          }
          return %c, %ys
        }
        """,
        "specialize-shapes{T=7, B=2}",
        """
        graph @g(%x: f32[7, 2, D], %h: f32[2, D]) -> f32[2, D], f32[7, 2, D] {
          %c, %ys = scan(%h, %x) {num_carry = 1} : f32[2, D], f32[7, 2, D]
              body(%s: f32[2, D], %r: f32[2, D]) {
            %n = add(%s, %r) : f32[2, D]
            %f = full() {shape = [2, 1], value = 0.5} : f32[2, 1]
            %m = mul(%n, %f) : f32[2, D]
            yield %m, %n
          }
          return %c, %ys
        }
        """,
    )


def test_unknown_symbol_is_an_error_listing_the_graph_symbols():
    with pytest.raises(PassError, match=r"in pass specialize-shapes: graph @g has no symbol 'N'") \
            as info:
        run_pipeline(parse_air(_SRC), "specialize-shapes{B=2,N=3}")
    assert info.value.hint == "its symbols: B, T"


@pytest.mark.parametrize("size", ["2.5", "two", "", "3x"])
def test_a_size_that_is_not_an_integer_is_an_error(size):
    with pytest.raises(PassError, match=rf"size of symbol 'B' must be an integer, got '{size}'"):
        run_pipeline(parse_air(_SRC), f"specialize-shapes{{B={size}}}")


def test_a_size_that_makes_a_shape_negative_is_an_error():
    src = """
        graph @g(%x: f32[T]) -> f32[T - 3] {
          %y = slice(%x) {axes = [0], starts = [3], ends = [2147483647]} : f32[T - 3]
          return %y
        }
        """
    with pytest.raises(PassError, match=r"binding T=2 makes dim T - 3 negative \(-1\)"):
        run_pipeline(parse_air(src), "specialize-shapes{T=2}")
    with pytest.raises(PassError, match=r"makes dim B negative"):
        run_pipeline(parse_air(_SRC), "specialize-shapes{B=-1}")


def test_a_size_that_breaks_inference_is_reported_at_the_node():
    src = """
        graph @g(%x: f32[B, N]) -> f32[B, 4], i64[B, 4] {
          %v, %i = topk(%x) {k = 4} : f32[B, 4], i64[B, 4]
          return %v, %i
        }
        """
    graph = parse_air(src)
    with pytest.raises(PassError, match=r"binding N=3 makes topk invalid: topk k = 4 must lie") \
            as info:
        run_pipeline(graph, "specialize-shapes{N=3}")
    assert "in: topk(%x)" in str(info.value)
    assert info.value.loc is not None and info.value.loc.line == 3


def test_numerics_unchanged_after_specialising(rng):
    graph = give_random_params(parse_air(_SRC), rng)
    result = check_numerics(graph, "specialize-shapes{B=2,T=3}", rng,
                            sizes={"B": 2, "T": 3})
    assert all(v.type.is_static() for v in result.inputs + result.outputs)


def test_scan_numerics_unchanged_after_specialising(rng):
    src = """
        graph @g(%x: f32[T, B, 3], %h: f32[B, 3]) -> f32[B, 3], f32[T, B, 3] {
          %c, %ys = scan(%h, %x) {num_carry = 1} : f32[B, 3], f32[T, B, 3]
              body(%s: f32[B, 3], %r: f32[B, 3]) {
            %n = add(%s, %r) : f32[B, 3]
            %m = tanh(%n) : f32[B, 3]
            yield %m, %n
          }
          return %c, %ys
        }
        """
    result = check_numerics(parse_air(src), "specialize-shapes{B=4}", rng, sizes={"B": 4, "T": 6})
    assert [str(v.type) for v in result.inputs] == ["f32[T, 4, 3]", "f32[4, 3]"]


def test_builder_graph_numerics_unchanged(rng):
    b = GraphBuilder("net")
    x = b.input("x", f32["B", "T", 6])
    w = b.param("w", f32[6], rng.standard_normal(6).astype(np.float32))
    h = b.reshape(b.mul(x, w), shape=["B*T", 6])
    ramp = b.iota(shape=["B*T", 1], dtype="f32")
    b.output(b.add(h, ramp), b.exp(b.transpose(x, perm=[1, 0, 2])))
    graph = b.build()
    result = check_numerics(graph, "specialize-shapes{B=3,T=5}", rng, sizes={"B": 3, "T": 5})
    assert [str(v.type) for v in result.outputs] == ["f32[15, 6]", "f32[5, 3, 6]"]
    assert result.nodes[1].attrs["shape"] == (15, 6)
