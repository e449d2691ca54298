"""The `fused` op: a group's body runs on the interpreter and as one function on the torch backend
(both against PyTorch, f32 atol = rtol = 1e-5); it prints and parses; the verifier rejects open
bodies, bodies with regions, wrong yields and flash on non-attention groups; DOT draws a cluster.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from archir.backends.torch.codegen import generate_source

from archir.dot import to_dot
from archir.errors import ArchirError
from archir.interpreter import run
from archir.parser import parse
from archir.verifier import verify
from tests.harness import assert_close, check_backend_agrees, check_round_trip, rand, to_torch

TOL = {"atol": 1e-5, "rtol": 1e-5}

EPILOGUE = """
graph @g(%x: f32[3, 8], %res: f32[3, 4]) -> f32[3, 4], f32[3, 4]
    params(%w: f32[8, 4], %b: f32[4]) {
  %y, %h = fused(%x, %w, %b, %res) {kind = "gemm_epilogue", rules = "fuse-epilogue"} : f32[3, 4], f32[3,
      4] @fc
      body(%0: f32[3, 8], %1: f32[8, 4], %2: f32[4], %3: f32[3, 4]) {
    %4 = matmul(%0, %1) : f32[3, 4] @fc
    %5 = add(%4, %2) : f32[3, 4]
    %6 = gelu(%5) {approximate = "tanh"} : f32[3, 4]
    %7 = add(%6, %3) : f32[3, 4]
    yield %7, %5
  }
  return %y, %h
}
"""


def epilogue_graph(rng: np.random.Generator):
    graph = parse(EPILOGUE)
    graph.param_data = {"w": rand(rng, 8, 4), "b": rand(rng, 4)}
    verify(graph)
    return graph


def test_body_runs_on_the_interpreter_and_torch_against_pytorch(rng: np.random.Generator) -> None:
    graph = check_round_trip(epilogue_graph(rng))
    x, res = rand(rng, 3, 8), rand(rng, 3, 4)
    got = run(graph, x, res)
    w, b = (to_torch(graph.param_data[k]) for k in ("w", "b"))
    pre = to_torch(x) @ w + b
    want = torch.nn.functional.gelu(pre, approximate="tanh") + to_torch(res)
    assert_close(got[0], want, **TOL)
    assert_close(got[1], pre, **TOL)
    check_backend_agrees(graph, [x, res], got, "torch")


def test_torch_backend_emits_one_function_per_group(rng: np.random.Generator) -> None:
    source = generate_source(epilogue_graph(rng))
    assert "# fused kernel: gemm_epilogue (fuse-epilogue) @fc" in source
    assert source.count("def kernel") == 1
    assert source.count("def ") == 2  # forward and the kernel


def test_groups_inside_a_scan_body_run_per_step(rng: np.random.Generator) -> None:
    graph = parse("""
    graph @g(%h0: f32[2], %xs: f32[5, 2]) -> f32[2] {
      %h, %ys = scan(%h0, %xs) {num_carry = 1} : f32[2], f32[5, 2] body(%c: f32[2], %x: f32[2]) {
        %n = fused(%c, %x) {kind = "elementwise", rules = "fuse-elementwise"} : f32[2]
            body(%a: f32[2], %b: f32[2]) {
          %s = add(%a, %b) : f32[2]
          %t = tanh(%s) : f32[2]
          yield %t
        }
        yield %n, %n
      }
      return %h
    }
    """)
    verify(graph)
    h0, xs = rand(rng, 2), rand(rng, 5, 2)
    got = run(graph, h0, xs)
    want = to_torch(h0)
    for t in range(5):
        want = torch.tanh(want + to_torch(xs[t]))
    assert_close(got[0], want, **TOL)
    check_backend_agrees(graph, [h0, xs], got, "torch")


def _group(body: str, *, attrs: str = 'kind = "elementwise", rules = "test"', ins: str = "%x",
           args: str = "%a: f32[4]", result: str = "f32[4]") -> str:
    return f"""
    graph @g(%x: f32[4], %y: f32[4]) -> {result} {{
      %z = fused({ins}) {{{attrs}}} : {result} body({args}) {{
        {body}
      }}
      return %z
    }}
    """


@pytest.mark.parametrize(("text", "message"), [
    (_group("%b = add(%a, %y) : f32[4]\n yield %b"), "fused body reads %y (f32[4]) from outside"),
    (_group("%b = exp(%a) : f32[4]\n yield %b", result="f32[]"),
     "result 0 of fused is declared f32[] but inference gives f32[4]"),
    (_group("%b = exp(%a) : f32[4]\n yield %b", ins="%x, %y"),
     "region 'body' of fused takes (f32[4]) but must take (f32[4], f32[4])"),
    (_group("%b = exp(%a) : f32[4]\n yield %b", attrs='kind = "elementwise", rules = "t", flash = true'),
     'flash = true needs kind = "attention"'),
    (_group("%b = exp(%a) : f32[4]\n yield %b", attrs='kind = "gemm", rules = "t"'),
     "fused attribute 'kind' must be one of"),
])
def test_verifier_rejects_malformed_groups(text: str, message: str) -> None:
    with pytest.raises(ArchirError) as err:
        verify(parse(text))
    assert message in str(err.value)


def test_a_body_holding_control_flow_is_rejected() -> None:
    text = """
    graph @g(%x: f32[4], %p: bool[]) -> f32[4] {
      %z = fused(%x, %p) {kind = "elementwise", rules = "test"} : f32[4] body(%a: f32[4], %q: bool[]) {
        %b = cond(%q, %a) : f32[4] then(%t: f32[4]) {
          yield %t
        } else(%e: f32[4]) {
          yield %e
        }
        yield %b
      }
      return %z
    }
    """
    with pytest.raises(ArchirError) as err:
        verify(parse(text))
    assert "fused body holds cond, which has regions" in str(err.value)


def test_dot_draws_the_group_as_a_labelled_cluster(rng: np.random.Generator) -> None:
    source = to_dot(epilogue_graph(rng)).source
    assert "fused gemm_epilogue kernel (fuse-epilogue) @fc" in source
    assert source.count("subgraph cluster_") == 2  # the group and its body region
    assert "<b>matmul</b>" in source and "<b>gelu</b>" in source
