"""fold-constants: splats to `full`, other static results to new parameters, and what stays."""

import numpy as np

from archir import GraphBuilder, f32
from archir.interpreter import run
from archir.pass_manager import run_pipeline
from tests.passes.cases import check_numerics, check_pipeline, give_random_params, parse_air


def test_splat_results_become_full_nodes_and_fold_in_chains():
    check_pipeline(
        """
        graph @g(%x: f32[2, 3]) -> f32[2, 3] {
          %a = full() {shape = [2, 1], value = 2.0} : f32[2, 1]
          %b = full() {shape = [3], value = 3.0} : f32[3]
          %s = mul(%a, %b) : f32[2, 3]
          %t = neg(%s) : f32[2, 3]
          %y = add(%x, %t) : f32[2, 3]
          return %y
        }
        """,
        "fold-constants,dce",
        """
        graph @g(%x: f32[2, 3]) -> f32[2, 3] {
          %t = full() {shape = [2, 3], value = -6.0} : f32[2, 3]
          %y = add(%x, %t) : f32[2, 3]
          return %y
        }
        """,
    )


def test_non_splat_results_become_parameters_holding_the_data():
    graph = check_pipeline(
        """
        graph @g(%x: i64[4]) -> i64[4] {
          %i = iota() {shape = [4]} : i64[4]
          %two = full() {shape = [], value = 2.0, dtype = i64} : i64[]
          %m = mul(%i, %two) : i64[4] @scale
          %y = add(%x, %m) : i64[4]
          return %y
        }
        """,
        "fold-constants,dce",
        """
        graph @g(%x: i64[4]) -> i64[4]
            params(%scale.folded: i64[4]) {
          %y = add(%x, %scale.folded) : i64[4]
          return %y
        }
        """,
    )
    np.testing.assert_array_equal(graph.param_data["scale.folded"], [0, 2, 4, 6])
    assert graph.param_data["scale.folded"].dtype == np.int64


def test_params_with_data_are_constants_and_folded_names_are_unique(rng):
    src = """
        graph @g(%x: f32[3, 2]) -> f32[3, 2], f32[3, 2]
            params(%w: f32[2, 3], %transpose.folded: f32[3, 2]) {
          %t = transpose(%w) {perm = [1, 0]} : f32[3, 2]
          %u = transpose(%w) {perm = [1, 0]} : f32[3, 2]
          %e = exp(%u) : f32[3, 2]
          %y = add(%x, %t) : f32[3, 2]
          %z = add(%e, %transpose.folded) : f32[3, 2]
          return %y, %z
        }
        """
    graph = give_random_params(parse_air(src), rng)
    w = graph.param_data["w"]
    old = graph.param_data["transpose.folded"]
    result = run_pipeline(graph, "fold-constants")
    assert [p.name for p in result.params] == ["w", "transpose.folded", "transpose.folded.1",
                                               "transpose.folded.2", "exp.folded", "add.folded"]
    np.testing.assert_array_equal(result.param_data["transpose.folded.1"], w.T)
    np.testing.assert_array_equal(result.param_data["exp.folded"], np.exp(w.T))
    np.testing.assert_array_equal(result.param_data["add.folded"], np.exp(w.T) + old)
    assert [n.op for n in result.nodes] == ["add"]


def test_symbolic_results_fold_only_when_provably_splats():
    check_pipeline(
        """
        graph @g(%x: f32[B, 3]) -> f32[B, 3], f32[B + 1], i64[B] {
          %a = full() {shape = [B, 1], value = 2.0} : f32[B, 1]
          %b = full() {shape = [3], value = 0.5} : f32[3]
          %s = mul(%a, %b) : f32[B, 3]
          %y = add(%x, %s) : f32[B, 3]
          %c = full() {shape = [1], value = 1.0} : f32[1]
          %d = full() {shape = [B], value = 2.0} : f32[B]
          %cat = concat(%c, %d) {axis = 0} : f32[B + 1]
          %i = iota() {shape = [B]} : i64[B]
          %two = full() {shape = [], value = 2.0, dtype = i64} : i64[]
          %m = mul(%i, %two) : i64[B]
          return %y, %cat, %m
        }
        """,
        "fold-constants,dce",
        """
        graph @g(%x: f32[B, 3]) -> f32[B, 3], f32[B + 1], i64[B] {
          %s = full() {shape = [B, 3], value = 1.0} : f32[B, 3]
          %y = add(%x, %s) : f32[B, 3]
          %c = full() {shape = [1], value = 1.0} : f32[1]
          %d = full() {shape = [B], value = 2.0} : f32[B]
          %cat = concat(%c, %d) {axis = 0} : f32[B + 1]
          %i = iota() {shape = [B]} : i64[B]
          %two = full() {shape = [], value = 2.0, dtype = i64} : i64[]
          %m = mul(%i, %two) : i64[B]
          return %y, %cat, %m
        }
        """,
    )


def test_copying_ops_on_symbolic_splats_fold():
    check_pipeline(
        """
        graph @g(%x: f32[B, T]) -> f32[B, T], f32[T, B]
            params(%unused: f32[2]) {
          %c = full() {shape = [1, 1], value = 4.0} : f32[1, 1]
          %e = expand(%c) {shape = [B, T]} : f32[B, T]
          %t = transpose(%e) {perm = [1, 0]} : f32[T, B]
          %y = mul(%x, %e) : f32[B, T]
          return %y, %t
        }
        """,
        "fold-constants,dce",
        """
        graph @g(%x: f32[B, T]) -> f32[B, T], f32[T, B] {
          %e = full() {shape = [B, T], value = 4.0} : f32[B, T]
          %t = full() {shape = [T, B], value = 4.0} : f32[T, B]
          %y = mul(%x, %e) : f32[B, T]
          return %y, %t
        }
        """,
    )


def test_what_must_not_fold():
    # Sources themselves, nodes with a non-constant input, params without data, regions, and a
    # non-splat larger than 1 << 20 elements and than its inputs.
    src = """
        graph @g(%x: f32[3]) -> f32[3], f32[3], f32[3], f32[1024, 2048], f32[3]
            params(%w: f32[3]) {
          %one = full() {shape = [3], value = 1.0} : f32[3]
          %yes = full() {shape = [], value = 1.0, dtype = bool} : bool[]
          %a = add(%x, %one) : f32[3]
          %b = mul(%w, %one) : f32[3]
          %c = cond(%yes, %one) : f32[3] then(%t: f32[3]) {
            yield %t
          } else(%f: f32[3]) {
            yield %f
          }
          %rows = iota() {shape = [1024, 1], dtype = f32} : f32[1024, 1]
          %cols = iota() {shape = [1, 2048], axis = 1, dtype = f32} : f32[1, 2048]
          %big = add(%rows, %cols) : f32[1024, 2048]
          return %a, %b, %c, %big, %one
        }
        """
    check_pipeline(src, "fold-constants", src)


def test_integer_splats_a_float_cannot_hold_become_parameters():
    graph = check_pipeline(
        """
        graph @g(%x: i64[2]) -> i64[2] {
          %a = full() {shape = [2], value = 9007199254740992.0, dtype = i64} : i64[2]
          %b = full() {shape = [], value = 1.0, dtype = i64} : i64[]
          %c = add(%a, %b) : i64[2]
          %y = add(%x, %c) : i64[2]
          return %y
        }
        """,
        "fold-constants,dce",
        """
        graph @g(%x: i64[2]) -> i64[2]
            params(%add.folded: i64[2]) {
          %y = add(%x, %add.folded) : i64[2]
          return %y
        }
        """,
    )
    np.testing.assert_array_equal(graph.param_data["add.folded"], [2**53 + 1] * 2)


def test_folds_inside_a_scan_body():
    check_pipeline(
        """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3] {
          %two = full() {shape = [3], value = 2.0} : f32[3]
          %c = scan(%h, %x) {num_carry = 1} : f32[3] body(%s: f32[3], %r: f32[3]) {
            %k = exp(%two) : f32[3]
            %l = log(%k) : f32[3]
            %n = mul(%s, %l) : f32[3]
            %m = add(%n, %r) : f32[3]
            yield %m
          }
          return %c
        }
        """,
        "fold-constants,dce",
        """
        graph @g(%x: f32[5, 3], %h: f32[3]) -> f32[3] {
          %c = scan(%h, %x) {num_carry = 1} : f32[3] body(%s: f32[3], %r: f32[3]) {
            %l = full() {shape = [3], value = 2.0} : f32[3]
            %n = mul(%s, %l) : f32[3]
            %m = add(%n, %r) : f32[3]
            yield %m
          }
          return %c
        }
        """,
    )


def test_low_precision_results_round_like_the_interpreter():
    src = """
        graph @g(%x: f16[4]) -> f16[4] {
          %a = full() {shape = [4], value = 0.1, dtype = f16} : f16[4]
          %b = full() {shape = [4], value = 3.0, dtype = f16} : f16[4]
          %c = div(%a, %b) : f16[4]
          %y = add(%x, %c) : f16[4]
          return %y
        }
        """
    graph = parse_air(src)
    x = np.linspace(-1, 1, 4).astype(np.float16)
    (before,) = run(graph, x)
    result = run_pipeline(graph, "fold-constants,dce")
    (full,) = [n for n in result.nodes if n.op == "full"]
    assert full.attrs["value"] == float(np.float16(np.float32(np.float16(0.1)) / np.float32(3.0)))
    np.testing.assert_array_equal(run(result, x)[0], before)


def test_builder_graph_numerics_unchanged(rng):
    b = GraphBuilder("net")
    x = b.input("x", f32[4, 6])
    w = b.param("w", f32[6, 4], rng.standard_normal((6, 4)).astype(np.float32))
    s = b.param("s", f32[6], rng.standard_normal(6).astype(np.float32))
    half = b.full(shape=[], value=0.5)
    w_eff = b.mul(b.transpose(w, perm=[1, 0]), b.tanh(s))
    bias = b.add(b.iota(shape=[4, 6], axis=1, dtype="f32"), half)
    b.output(b.add(b.mul(x, w_eff), bias), b.exp(half))
    graph = b.build()
    result = check_numerics(graph, "fold-constants,dce", rng)
    assert [n.op for n in result.nodes] == ["mul", "add", "full"]
    assert sorted(p.name for p in result.params) == ["add.folded", "mul.folded"]


def test_symbolic_graph_numerics_unchanged(rng):
    src = """
        graph @g(%x: f32[B, 3]) -> f32[B, 3], f32[B, 3] {
          %a = full() {shape = [B, 1], value = 2.0} : f32[B, 1]
          %b = iota() {shape = [3], dtype = f32} : f32[3]
          %c = full() {shape = [], value = 0.25} : f32[]
          %s = mul(%a, %c) : f32[B, 1]
          %e = expand(%s) {shape = [B, 3]} : f32[B, 3]
          %t = add(%e, %b) : f32[B, 3]
          %bb = mul(%b, %c) : f32[3]
          %y = add(%x, %t) : f32[B, 3]
          %z = mul(%x, %bb) : f32[B, 3]
          return %y, %z
        }
        """
    result = check_numerics(parse_air(src), "fold-constants,dce", rng, sizes={"B": 5})
    # t = e + iota is not a splat, so it stays; the static iota * 0.25 becomes a parameter.
    assert [n.op for n in result.nodes] == ["iota", "full", "add", "add", "mul"]
    assert [p.name for p in result.params] == ["mul.folded"]
