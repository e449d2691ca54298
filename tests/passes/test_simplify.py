"""simplify: arithmetic identities, layout no-ops, and the rewrites that must not apply."""

import numpy as np
import pytest

from archir import GraphBuilder, f32
from tests.passes.cases import check_numerics, check_pipeline, parse_air

_ONE = "%one = full() {shape = [], value = 1.0} : f32[]"
_ZERO = "%zero = full() {shape = [3], value = 0.0} : f32[3]"


@pytest.mark.parametrize("expr", [
    "mul(%x, %one)", "mul(%one, %x)", "add(%x, %zero)", "add(%zero, %x)", "sub(%x, %zero)",
    "div(%x, %one)", "pow(%x, %one)",
])
def test_arithmetic_identities_return_x(expr):
    check_pipeline(
        f"""
        graph @g(%x: f32[2, 3]) -> f32[2, 3] {{
          {_ONE}
          {_ZERO}
          %y = {expr} : f32[2, 3]
          %z = exp(%y) : f32[2, 3]
          return %z
        }}
        """,
        "simplify,dce",
        """
        graph @g(%x: f32[2, 3]) -> f32[2, 3] {
          %z = exp(%x) : f32[2, 3]
          return %z
        }
        """,
    )


@pytest.mark.parametrize(("expr", "result_type"), [
    ("sub(%zero, %x)", "f32[2, 3]"),  # 0 - x is -x
    ("div(%one, %x)", "f32[2, 3]"),  # 1 / x
    ("pow(%one, %x)", "f32[2, 3]"),
    ("mul(%x, %zero)", "f32[2, 3]"),  # x * 0 is not x
    ("add(%x, %one)", "f32[2, 3]"),
    ("add(%x, %big_zero)", "f32[4, 2, 3]"),  # broadcasts x to a larger shape
    ("mul(%x, %one64)", "f64[2, 3]"),  # promotes x to f64
    ("add(%i, %zero)", "f32[2, 3]"),  # promotes i64 to f32
])
def test_identities_that_change_the_type_or_value_stay(expr, result_type):
    src = f"""
        graph @g(%x: f32[2, 3], %i: i64[2, 3]) -> {result_type} {{
          {_ONE}
          {_ZERO}
          %big_zero = full() {{shape = [4, 1, 1], value = 0.0}} : f32[4, 1, 1]
          %one64 = full() {{shape = [], value = 1.0, dtype = f64}} : f64[]
          %y = {expr} : {result_type}
          return %y
        }}
        """
    check_pipeline(src, "simplify", src)


def test_neg_of_neg():
    check_pipeline(
        """
        graph @g(%x: f32[3]) -> f32[3], f32[3] {
          %a = neg(%x) : f32[3]
          %b = neg(%a) : f32[3]
          %c = neg(%b) : f32[3]
          return %b, %c
        }
        """,
        "simplify,dce",
        """
        graph @g(%x: f32[3]) -> f32[3], f32[3] {
          %c = neg(%x) : f32[3]
          return %x, %c
        }
        """,
    )


def test_double_transpose_composes_its_perms_and_drops_identities():
    check_pipeline(
        """
        graph @g(%x: f32[2, 3, 4]) -> f32[4, 2, 3], f32[2, 3, 4], f32[2, 3, 4] {
          %a = transpose(%x) {perm = [1, 2, 0]} : f32[3, 4, 2]
          %b = transpose(%a) {perm = [0, 2, 1]} : f32[3, 2, 4]
          %c = transpose(%b) {perm = [2, 1, 0]} : f32[4, 2, 3]
          %d = transpose(%x) {perm = [1, 0, 2]} : f32[3, 2, 4]
          %e = transpose(%d) {perm = [1, 0, -1]} : f32[2, 3, 4]
          %f = transpose(%x) {perm = [0, 1, 2]} : f32[2, 3, 4]
          return %c, %e, %f
        }
        """,
        "simplify,dce",
        """
        graph @g(%x: f32[2, 3, 4]) -> f32[4, 2, 3], f32[2, 3, 4], f32[2, 3, 4] {
          %c = transpose(%x) {perm = [2, 0, 1]} : f32[4, 2, 3]
          return %c, %x, %x
        }
        """,
    )


def test_reshape_of_reshape_becomes_one_and_same_type_reshapes_vanish():
    check_pipeline(
        """
        graph @g(%x: f32[B, 6]) -> f32[B, 2, 3], f32[B, 6], f32[B, 6] {
          %a = reshape(%x) {shape = [B*6]} : f32[6*B]
          %b = reshape(%a) {shape = [B, 2, 3]} : f32[B, 2, 3]
          %c = reshape(%a) {shape = [B, -1]} : f32[B, 6]
          %d = reshape(%x) {shape = [B, 6]} : f32[B, 6]
          return %b, %c, %d
        }
        """,
        "simplify,dce",
        """
        graph @g(%x: f32[B, 6]) -> f32[B, 2, 3], f32[B, 6], f32[B, 6] {
          %b = reshape(%x) {shape = [B, 2, 3]} : f32[B, 2, 3]
          return %b, %x, %x
        }
        """,
    )


def test_expand_and_cast_to_the_same_type_vanish_but_real_ones_stay():
    check_pipeline(
        """
        graph @g(%x: f32[1, 3]) -> f32[1, 3], f32[4, 3], f32[1, 3], f16[1, 3] {
          %a = expand(%x) {shape = [1, 3]} : f32[1, 3]
          %b = expand(%x) {shape = [4, -1]} : f32[4, 3]
          %c = cast(%x) {dtype = f32} : f32[1, 3]
          %d = cast(%x) {dtype = f16} : f16[1, 3]
          return %a, %b, %c, %d
        }
        """,
        "simplify,dce",
        """
        graph @g(%x: f32[1, 3]) -> f32[1, 3], f32[4, 3], f32[1, 3], f16[1, 3] {
          %b = expand(%x) {shape = [4, -1]} : f32[4, 3]
          %d = cast(%x) {dtype = f16} : f16[1, 3]
          return %x, %b, %x, %d
        }
        """,
    )


def test_squeeze_unsqueeze_pairs_cancel_only_when_they_restore_the_type():
    check_pipeline(
        """
        graph @g(%x: f32[1, 3]) -> f32[1, 3], f32[1, 3], f32[3, 1] {
          %a = unsqueeze(%x) {axes = [1]} : f32[1, 1, 3]
          %b = squeeze(%a) {axes = [1]} : f32[1, 3]
          %c = squeeze(%x) {axes = [0]} : f32[3]
          %d = unsqueeze(%c) {axes = [0]} : f32[1, 3]
          %e = unsqueeze(%c) {axes = [1]} : f32[3, 1]
          return %b, %d, %e
        }
        """,
        "simplify,dce",
        """
        graph @g(%x: f32[1, 3]) -> f32[1, 3], f32[1, 3], f32[3, 1] {
          %c = squeeze(%x) {axes = [0]} : f32[3]
          %e = unsqueeze(%c) {axes = [1]} : f32[3, 1]
          return %x, %x, %e
        }
        """,
    )


def test_simplifies_inside_a_scan_body():
    check_pipeline(
        """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3] {
          %one = full() {shape = [3], value = 1.0} : f32[3]
          %c = scan(%h, %x) {num_carry = 1} : f32[3] body(%s: f32[3], %r: f32[3]) {
            %a = mul(%r, %one) : f32[3]
            %b = neg(%a) : f32[3]
            %n = neg(%b) : f32[3]
            %m = add(%s, %n) : f32[3]
            yield %m
          }
          return %c
        }
        """,
        "simplify,dce",
        """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3] {
          %c = scan(%h, %x) {num_carry = 1} : f32[3] body(%s: f32[3], %r: f32[3]) {
            %m = add(%s, %r) : f32[3]
            yield %m
          }
          return %c
        }
        """,
    )


def test_leaves_unrelated_ops_alone():
    src = """
        graph @g(%x: f32[3], %y: f32[3]) -> f32[3] {
          %a = mul(%x, %y) : f32[3]
          %b = neg(%a) : f32[3]
          %c = add(%b, %x) : f32[3]
          return %c
        }
        """
    check_pipeline(src, "simplify", src)


def test_builder_graph_numerics_unchanged(rng):
    b = GraphBuilder("net")
    x = b.input("x", f32[4, 6])
    w = b.param("w", f32[6, 4], rng.standard_normal((6, 4)).astype(np.float32))
    one = b.full(shape=[], value=1.0)
    zero = b.full(shape=[4, 6], value=0.0)
    wt = b.transpose(b.transpose(b.transpose(w, perm=[1, 0]), perm=[1, 0]), perm=[1, 0])
    h = b.add(b.mul(b.mul(x, one), wt), zero)
    flat = b.reshape(b.reshape(h, shape=[24]), shape=[2, 12])
    b.output(b.neg(b.neg(flat)), b.div(b.cast(h, dtype="f32"), one))
    graph = b.build()
    result = check_numerics(graph, "simplify,dce", rng)
    assert [n.op for n in result.nodes] == ["transpose", "mul", "reshape"]


def test_scan_graph_numerics_unchanged(rng):
    src = """
        graph @g(%x: f32[5, 2, 3], %h: f32[2, 3]) -> f32[2, 3], f32[5, 3, 2] {
          %zero = full() {shape = [1, 3], value = 0.0} : f32[1, 3]
          %c, %ys = scan(%h, %x) {num_carry = 1} : f32[2, 3], f32[5, 3, 2]
              body(%s: f32[2, 3], %r: f32[2, 3]) {
            %a = add(%r, %zero) : f32[2, 3]
            %t = transpose(%a) {perm = [1, 0]} : f32[3, 2]
            %u = transpose(%t) {perm = [1, 0]} : f32[2, 3]
            %n = add(%s, %u) : f32[2, 3]
            %m = tanh(%n) : f32[2, 3]
            yield %m, %t
          }
          return %c, %ys
        }
        """
    result = check_numerics(parse_air(src), "simplify,dce", rng)
    assert [n.op for n in result.walk()] == ["scan", "transpose", "add", "tanh"]
