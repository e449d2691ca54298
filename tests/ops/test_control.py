"""Control flow (scan, cond, while) against PyTorch: RNN and LSTM layers written as scans against
torch.nn.RNN / LSTM / LSTMCell, loops and branches against plain Python loops over torch ops.

Every graph is verified, round-tripped through text, run on the interpreter, and the torch backend
must agree with the interpreter (tests/harness.py). Tolerance against the references: f32 atol =
rtol = 1e-5 (recurrences accumulate rounding over at most 9 steps); integer results are exact.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from archir import GraphBuilder, TypeInferenceError, Value, VerifyError, f32, i64
from archir.interpreter import run
from archir.ir import Graph
from archir.parser import parse
from archir.types import DType
from archir.verifier import verify
from tests.harness import assert_close, check_backend_agrees, check_round_trip, rand, to_torch

TOL = {"atol": 1e-5, "rtol": 1e-5}


def run_checked(graph: Graph, *arrays: np.ndarray) -> list[np.ndarray]:
    """Round trip, interpreter, and the torch backend against the interpreter."""
    parsed = check_round_trip(graph)
    outputs = run(parsed, *arrays)
    check_backend_agrees(parsed, list(arrays), outputs, "torch")
    return outputs


def weights(b: GraphBuilder, module: torch.nn.Module, suffix: str = "") -> dict[str, Value]:
    """Graph params holding the torch module's parameters, named as torch names them."""
    out = {}
    for name, p in module.named_parameters():
        if name.endswith(suffix) and (suffix or not name.endswith("_reverse")):
            out[name.removesuffix(suffix)] = b.param(name, f32[p.shape], p.detach().numpy().copy())
    return out


# -- scan: RNNs -------------------------------------------------------------------------------
def elman_scan(b: GraphBuilder, h0: Value, x: Value, w: dict[str, Value], nonlinearity: str,
               axis: int = 0, reverse: bool = False) -> tuple[Value, Value]:
    """(h_n, outputs): the whole cell, both projections, inside the scan body."""

    def step(h: Value, x_t: Value) -> tuple[Value, Value]:
        pre = b.add(b.linear(x_t, w["weight_ih_l0"], w["bias_ih_l0"]),
                    b.linear(h, w["weight_hh_l0"], w["bias_hh_l0"]))
        h_new = b.tanh(pre) if nonlinearity == "tanh" else b.relu(pre)
        return h_new, h_new

    h_n, ys = b.scan(h0, x, num_carry=1, axis=axis, reverse=reverse, regions=[step])
    return h_n, ys


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_elman_scan_matches_torch_rnn(nonlinearity, batch_first):
    torch.manual_seed(0)
    rnn = torch.nn.RNN(5, 6, nonlinearity=nonlinearity, batch_first=batch_first)
    b = GraphBuilder("elman")
    x = b.input("x", f32["B", "T", 5] if batch_first else f32["T", "B", 5])
    h0 = b.input("h0", f32["B", 6])
    h_n, ys = elman_scan(b, h0, x, weights(b, rnn), nonlinearity, axis=1 if batch_first else 0)
    b.output(ys, h_n)
    graph = b.build()
    rng = np.random.default_rng(1)
    for batch, steps in ((2, 7), (3, 1)):
        xa = rand(rng, *((batch, steps, 5) if batch_first else (steps, batch, 5)))
        h0a = rand(rng, batch, 6)
        got_ys, got_h = run_checked(graph, xa, h0a)
        want_ys, want_h = rnn(to_torch(xa), to_torch(h0a)[None])
        assert_close(got_ys, want_ys, **TOL)
        assert_close(got_h, want_h[0], **TOL)


def test_bidirectional_elman_reverse_scan_matches_torch():
    torch.manual_seed(1)
    rnn = torch.nn.RNN(4, 3, bidirectional=True)
    b = GraphBuilder("birnn")
    x = b.input("x", f32["T", "B", 4])
    h0 = b.input("h0", f32[2, "B", 3])
    h0_f, h0_b = (b.squeeze(part, axes=[0]) for part in b.split(h0, sizes=[1, 1], axis=0))
    hf, ys_f = elman_scan(b, h0_f, x, weights(b, rnn), "tanh")
    hb, ys_b = elman_scan(b, h0_b, x, weights(b, rnn, "_reverse"), "tanh", reverse=True)
    b.output(b.concat(ys_f, ys_b, axis=-1), b.concat(*(b.unsqueeze(h, axes=[0]) for h in (hf, hb)), axis=0))
    rng = np.random.default_rng(2)
    xa, h0a = rand(rng, 6, 2, 4), rand(rng, 2, 2, 3)
    got_ys, got_h = run_checked(b.build(), xa, h0a)
    want_ys, want_h = rnn(to_torch(xa), to_torch(h0a))
    assert_close(got_ys, want_ys, **TOL)
    assert_close(got_h, want_h, **TOL)


def test_lstm_scan_from_primitives_matches_torch_lstm_and_cell():
    """Two carries (h, c) and two per-step outputs (every h and every c)."""
    torch.manual_seed(2)
    hidden = 5
    lstm = torch.nn.LSTM(3, hidden)
    b = GraphBuilder("lstm")
    x = b.input("x", f32["T", "B", 3])
    h0, c0 = b.input("h0", f32["B", hidden]), b.input("c0", f32["B", hidden])
    w = weights(b, lstm)
    w_ih_t = b.transpose(w["weight_ih_l0"], perm=[1, 0])  # outside the body: regions read it
    w_hh_t = b.transpose(w["weight_hh_l0"], perm=[1, 0])
    bias = b.add(w["bias_ih_l0"], w["bias_hh_l0"])

    def step(h: Value, c: Value, x_t: Value) -> tuple[Value, ...]:
        gates = b.add(b.add(b.matmul(x_t, w_ih_t), b.matmul(h, w_hh_t)), bias)
        i, f, g, o = b.split(gates, sizes=[hidden] * 4, axis=1)
        c_new = b.add(b.mul(b.sigmoid(f), c), b.mul(b.sigmoid(i), b.tanh(g)))
        h_new = b.mul(b.sigmoid(o), b.tanh(c_new))
        return h_new, c_new, h_new, c_new

    h_n, c_n, hs, cs = b.scan(h0, c0, x, num_carry=2, regions=[step])
    b.output(hs, cs, h_n, c_n)
    rng = np.random.default_rng(3)
    xa, h0a, c0a = rand(rng, 9, 2, 3), rand(rng, 2, hidden), rand(rng, 2, hidden)
    got_hs, got_cs, got_h, got_c = run_checked(b.build(), xa, h0a, c0a)
    want_hs, (want_h, want_c) = lstm(to_torch(xa), (to_torch(h0a)[None], to_torch(c0a)[None]))
    assert_close(got_hs, want_hs, **TOL)
    assert_close(got_h, want_h[0], **TOL)
    assert_close(got_c, want_c[0], **TOL)
    cell = torch.nn.LSTMCell(3, hidden)  # the same weights, one step at a time, for every c_t
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in lstm.state_dict().items()})
    h, c, want_cs = to_torch(h0a), to_torch(c0a), []
    for x_t in to_torch(xa):
        h, c = cell(x_t, (h, c))
        want_cs.append(c)
    assert_close(got_cs, torch.stack(want_cs), **TOL)


# -- scan: other shapes of loop ---------------------------------------------------------------
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_with_two_carries_and_two_outputs_matches_cumulative_ops(rng, reverse):
    """Running sum and running max along axis 1 of a [3, 8, 2] tensor, carries of different types."""
    b = GraphBuilder("cumulative")
    xs = b.input("xs", f32[3, 8, 2])
    zero, ninf = b.full(shape=[3, 2], value=0.0), b.full(shape=[3, 2], value=float("-inf"))
    count = b.full(shape=[], value=0.0, dtype=i64)
    one = b.full(shape=[], value=1.0, dtype=i64)

    def step(total: Value, best: Value, n: Value, x: Value) -> tuple[Value, ...]:
        total, best = b.add(total, x), b.maximum(best, x)
        return total, best, b.add(n, one), total, best

    total, best, n, sums, maxes = b.scan(zero, ninf, count, xs, num_carry=3, axis=1,
                                         reverse=reverse, regions=[step])
    b.output(total, best, n, sums, maxes)
    xa = rand(rng, 3, 8, 2)
    got = run_checked(b.build(), xa)
    t = to_torch(xa).flip(1) if reverse else to_torch(xa)
    want_sums, want_maxes = torch.cumsum(t, 1), torch.cummax(t, 1).values
    if reverse:  # outputs are stacked in sequence order, whichever way the scan walks
        want_sums, want_maxes = want_sums.flip(1), want_maxes.flip(1)
    assert_close(got[0], t.sum(1), **TOL)
    assert_close(got[1], t.amax(1), **TOL)
    assert got[2].dtype == np.int64 and int(got[2]) == 8
    assert_close(got[3], want_sums, **TOL)
    assert_close(got[4], want_maxes, **TOL)


def test_scan_without_carries_maps_over_several_sequences(rng):
    b = GraphBuilder("map")
    xs, ys = b.input("xs", f32["T", 4]), b.input("ys", f32["T", 4])
    prods, sums = b.scan(xs, ys, num_carry=0, regions=[lambda x, y: (b.mul(x, y), b.sum(b.add(x, y)))])
    b.output(prods, sums)
    xa, ya = rand(rng, 5, 4), rand(rng, 5, 4)
    got_p, got_s = run_checked(b.build(), xa, ya)
    assert_close(got_p, to_torch(xa) * to_torch(ya), **TOL)
    assert_close(got_s, (to_torch(xa) + to_torch(ya)).sum(1), **TOL)


@pytest.mark.parametrize("steps", [0, 1, 4])
def test_scan_of_any_length_including_none_on_every_backend(rng, steps):
    """Running sum over a symbolic number of steps T: with T = 0 the carry is the initial value and
    each per-step output is empty with the declared shape (against torch.cumsum / sum)."""
    b = GraphBuilder("running_sum")
    xs, h0 = b.input("xs", f32[3, "T", 2]), b.input("h0", f32[3, 2])
    total, sums = b.scan(h0, xs, num_carry=1, axis=1,
                         regions=[lambda h, x: (b.add(h, x), b.mul(b.add(h, x), b.add(h, x)))])
    b.output(total, sums)
    xa, ha = rand(rng, 3, steps, 2), rand(rng, 3, 2)
    graph = b.build()
    got = run_checked(graph, xa, ha)
    check_backend_agrees(graph, [xa, ha], got, "llvm")
    want_sums = to_torch(ha)[:, None, :] + torch.cumsum(to_torch(xa), 1)
    assert_close(got[0], to_torch(ha) + to_torch(xa).sum(1), **TOL)
    assert got[1].shape == (3, steps, 2)
    assert_close(got[1], want_sums * want_sums, **TOL)


@pytest.mark.parametrize("axis", [2, -1])
def test_scan_along_the_last_axis_stacks_outputs_of_another_rank(rng, axis):
    """Per-step outputs of rank 3 from slices of rank 2: stacked at position 2 either way."""
    b = GraphBuilder("last_axis")
    xs = b.input("xs", f32[2, 3, 4])
    ys = b.scan(xs, num_carry=0, axis=axis, regions=[lambda x: b.unsqueeze(b.exp(x), axes=[2])])
    b.output(ys)
    assert str(ys.type) == "f32[2, 3, 4, 1]"
    xa = rand(rng, 2, 3, 4)
    (got,) = run_checked(b.build(), xa)
    assert_close(got, torch.exp(to_torch(xa))[..., None], **TOL)


def test_scan_with_cond_in_its_body_resets_the_state(rng):
    """h_t = (reset_t ? 0 : h_{t-1}) + x_t, the mask per step as a bool[] slice."""
    b = GraphBuilder("resettable_sum")
    xs, resets = b.input("xs", f32["T", 3]), b.input("resets", DType.bool["T"])
    h0 = b.full(shape=[3], value=0.0)

    def step(h: Value, x: Value, reset: Value) -> tuple[Value, Value]:
        h_new = b.add(b.cond(reset, h, regions=[lambda _: b.full(shape=[3], value=0.0), lambda h: h]), x)
        return h_new, h_new

    b.output(b.scan(h0, xs, resets, num_carry=1, regions=[step])[1])
    xa, ra = rand(rng, 7, 3), np.array([0, 0, 1, 0, 1, 1, 0], bool)
    (got,) = run_checked(b.build(), xa, ra)
    h, want = torch.zeros(3), []
    for x_t, r in zip(to_torch(xa), ra, strict=True):
        h = (torch.zeros(3) if r else h) + x_t
        want.append(h)
    assert_close(got, torch.stack(want), **TOL)


# -- while ------------------------------------------------------------------------------------
def scalar(b: GraphBuilder, value: float, dtype: DType = DType.i64) -> Value:
    return b.full(shape=[], value=value, dtype=dtype)


def test_counted_while_matches_a_python_loop(rng):
    b = GraphBuilder("counted")
    n, x = b.input("n", i64[()]), b.input("x", f32[3])
    start = (scalar(b, 0), b.full(shape=[3], value=1.0))
    i, acc = b.op("while", *start, regions=[
        lambda i, acc: b.lt(i, n),
        lambda i, acc: (b.add(i, scalar(b, 1)), b.add(b.mul(acc, b.full(shape=[], value=1.5)), x))])
    b.output(i, acc)
    graph = b.build()
    xa = rand(rng, 3)
    for count in (0, 1, 6):  # zero trips returns the initial carries
        got_i, got_acc = run_checked(graph, np.array(count, np.int64), xa)
        acc_t = torch.ones(3)
        for _ in range(count):
            acc_t = acc_t * 1.5 + to_torch(xa)
        assert got_i.dtype == np.int64 and int(got_i) == count
        assert_close(got_acc, acc_t, **TOL)


def test_newton_square_root_while_matches_torch(rng):
    """x <- (x + a / x) / 2 until the largest change is below tol: the trip count depends on a."""
    b = GraphBuilder("newton_sqrt")
    a, tol = b.input("a", f32["N"]), b.input("tol", f32[()])
    half = b.full(shape=[], value=0.5)

    def body(x: Value, change: Value, steps: Value) -> tuple[Value, Value, Value]:
        x_new = b.mul(half, b.add(x, b.div(a, x)))
        return x_new, b.max(b.abs(b.sub(x_new, x))), b.add(steps, scalar(b, 1))

    start = (b.add(a, b.full(shape=[], value=1.0)), scalar(b, float("inf"), DType.f32), scalar(b, 0))
    x, _, steps = b.op("while", *start, regions=[
        lambda x, change, steps: b.logical_and(b.gt(change, tol), b.lt(steps, scalar(b, 50))), body])
    b.output(x, steps)
    graph = b.build()
    for scale in (1.0, 1e4):
        aa = (rng.uniform(0.1, 10.0, 6) * scale).astype(np.float32)
        got_x, got_steps = run_checked(graph, aa, np.array(1e-6 * scale, np.float32))
        assert_close(got_x, torch.sqrt(to_torch(aa)), atol=0, rtol=1e-6)
        x_t, change, steps = to_torch(aa) + 1, float("inf"), 0  # the same loop in torch
        while change > 1e-6 * scale and steps < 50:
            x_new = 0.5 * (x_t + to_torch(aa) / x_t)
            x_t, change, steps = x_new, float((x_new - x_t).abs().max()), steps + 1
        assert int(got_steps) == steps > 1


def collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n, steps = (n // 2 if n % 2 == 0 else 3 * n + 1), steps + 1
    return steps


def test_collatz_while_with_integer_carries():
    b = GraphBuilder("collatz")
    n0 = b.input("n", i64[()])

    def body(n: Value, steps: Value) -> tuple[Value, Value]:
        half = b.cast(b.floor(b.div(n, scalar(b, 2))), dtype="i64")
        even = b.eq(b.mul(half, scalar(b, 2)), n)
        return b.where(even, half, b.add(b.mul(n, scalar(b, 3)), scalar(b, 1))), b.add(steps, scalar(b, 1))

    n, steps = b.op("while", n0, scalar(b, 0), regions=[lambda n, s: b.ne(n, scalar(b, 1)), body])
    b.output(steps, n)
    graph = b.build()
    for start in (1, 6, 27, 97):
        got_steps, got_n = run_checked(graph, np.array(start, np.int64))
        assert (int(got_steps), int(got_n)) == (collatz_steps(start), 1)


# -- cond -------------------------------------------------------------------------------------
def test_cond_runs_the_branch_its_predicate_picks(rng):
    b = GraphBuilder("branches")
    p, x, y = b.input("p", DType.bool[()]), b.input("x", f32["N"]), b.input("y", f32["N"])
    out, total = b.cond(p, x, y, regions=[
        lambda x, y: (b.add(b.mul(x, b.full(shape=[], value=2.0)), y), b.sum(x)),
        lambda x, y: (b.sub(x, b.exp(y)), b.max(y))])
    b.output(out, total)
    graph = b.build()
    xa, ya = rand(rng, 5), rand(rng, 5)
    xt, yt = to_torch(xa), to_torch(ya)  # what each branch computes, in torch
    for pred, want in ((True, (xt * 2 + yt, xt.sum())), (False, (xt - torch.exp(yt), yt.max()))):
        got = run_checked(graph, np.array(pred), xa, ya)
        assert_close(got[0], want[0], **TOL)
        assert_close(got[1], want[1], **TOL)


def test_cond_on_data_with_branches_that_take_no_arguments(rng):
    """The predicate is computed; the branches read x from the enclosing scope."""
    b = GraphBuilder("sign_switch")
    x = b.input("x", f32[4])
    y = b.cond(b.gt(b.sum(x), b.full(shape=[], value=0.0)),
               regions=[lambda: b.relu(x), lambda: b.neg(b.tanh(x))])
    b.output(y)
    graph = b.build()
    for sign in (1.0, -1.0):
        xa = (sign * np.abs(rand(rng, 4))).astype(np.float32)
        (got,) = run_checked(graph, xa)
        want = torch.relu(to_torch(xa)) if sign > 0 else -torch.tanh(to_torch(xa))
        assert_close(got, want, **TOL)


# -- type errors in regions (test_verifier.py covers region counts, names and argument types) ---
def _rejected(build: Callable[[GraphBuilder], object]) -> TypeInferenceError:
    b = GraphBuilder("bad")
    with pytest.raises(TypeInferenceError) as info:
        build(b)
    assert info.value.loc is not None and info.value.loc.file == __file__  # the offending line
    return info.value


@pytest.mark.parametrize(("cond", "got"), [(lambda b, x, k: b.sum(x), "f32[]"),
                                           (lambda b, x, k: b.gt(x, x), "bool[3]")])
def test_while_cond_must_yield_a_bool_scalar(cond, got):
    def build(b: GraphBuilder) -> object:
        return b.op("while", b.input("x", f32[3]), b.input("k", i64[()]),
                    regions=[lambda x, k: cond(b, x, k), lambda x, k: (x, k)])

    assert _rejected(build).message == f"while cond region yields ({got}) but must yield (bool[])"


def test_while_body_must_yield_the_carries():
    err = _rejected(lambda b: b.op("while", b.input("x", f32[3]), b.input("k", i64[()]), regions=[
        lambda x, k: b.lt(k, k), lambda x, k: (b.sum(x), k)]))
    assert err.message == "while body region yields (f32[], i64[]) but must yield (f32[3], i64[])"
    err = _rejected(lambda b: b.op("while", regions=[lambda: b.full(shape=[], value=1.0, dtype="bool"),
                                                    lambda: ()]))
    assert err.message == "while needs at least one carried value"


@pytest.mark.parametrize("pred", [f32[()], DType.bool[2]])
def test_cond_predicate_must_be_a_bool_scalar(pred):
    err = _rejected(lambda b: b.cond(b.input("p", pred), b.input("x", f32[3]),
                                     regions=[lambda x: x, lambda x: x]))
    assert err.message == f"cond predicate must be bool[], got {pred}"


def test_cond_branches_must_yield_the_same_types():
    err = _rejected(lambda b: b.cond(b.input("p", DType.bool[()]), b.input("x", f32[3]),
                                     regions=[lambda x: b.sum(x), lambda x: x]))
    assert err.message == "cond else region yields (f32[3]) but must yield (f32[])"


@pytest.mark.parametrize(("num_carry", "seqs", "message"), [
    (3, [f32[5, 3]], "scan has 2 operands but num_carry = 3"),
    (2, [], "scan needs at least one scanned sequence operand"),
    (1, [f32[5, 3], f32[4, 3]], "scanned operands disagree on the length of axis 0"),
])
def test_scan_operand_errors(num_carry, seqs, message):
    def build(b: GraphBuilder) -> object:
        operands = [b.input("c", f32[3])] + [b.input(f"s{i}", t) for i, t in enumerate(seqs)]
        if num_carry == 2:
            operands.append(b.input("c2", f32[3]))
        return b.scan(*operands, num_carry=num_carry, regions=[lambda *args: args])

    assert _rejected(build).message == message


def test_scan_body_yields_and_output_ranks_are_checked():
    def too_few(b: GraphBuilder) -> object:
        c = b.input("c", f32[3])
        return b.scan(c, c, b.input("xs", f32[5, 3]), num_carry=2, regions=[lambda c, d, x: c])

    assert _rejected(too_few).message == "scan body yields 1 values, fewer than its 2 carries"
    err = _rejected(lambda b: b.scan(b.input("xs", f32[2, 3, 4]), num_carry=0, axis=2,
                                     regions=[lambda x: b.sum(x)]))
    assert err.message == "scan per-step output f32[] has rank below axis 2"


def test_verifier_rejects_a_while_whose_cond_yields_a_float():
    text = """graph @g(%x: f32[]) -> f32[] {
  %0 = while(%x) : f32[] cond(%1: f32[]) {
    yield %1
  } body(%2: f32[]) {
    yield %2
  }
  return %0
}
"""
    with pytest.raises(VerifyError) as info:
        verify(parse(text, "loop.air"))
    assert str(info.value.loc) == "loop.air:2:3"
    assert info.value.message == "while cond region yields (f32[]) but must yield (bool[])"
