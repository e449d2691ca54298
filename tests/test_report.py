"""archir.report and `archir dump --report`: figures of small graphs computed by hand here, the
rules count of fused groups, and reports of zoo models (gpt2, resnet) through the command line."""

import re
from pathlib import Path

import pytest

from archir.cli import main
from archir.errors import ArchirError
from archir.ir import Graph, Node, Region, Value
from archir.report import (
    GraphFigures,
    copy_graph,
    format_bytes,
    format_report,
    graph_figures,
    parse_sizes,
    pipeline_report,
    rules_fired,
)
from archir.types import f32
from tests.passes.cases import parse_air

ROOT = Path(__file__).resolve().parent.parent

# f32[4, 8] is 128 bytes, f32[8, 8] 256, f32[8] 32.
MLP = """
    graph @mlp(%x: f32[4, 8]) -> f32[4, 8] params(%w: f32[8, 8], %b: f32[8]) {
      %0 = matmul(%x, %w) : f32[4, 8]
      %1 = add(%0, %b) : f32[4, 8]
      %2 = reshape(%1) {shape = [8, 4]} : f32[8, 4]
      %3 = transpose(%2) {perm = [1, 0]} : f32[4, 8]
      %4 = tanh(%3) : f32[4, 8]
      return %4
    }
"""


def test_figures_of_a_small_graph_match_hand_counts():
    f = graph_figures(parse_air(MLP), {})
    assert f.nodes == 5
    assert f.ops == {"add": 1, "matmul": 1, "reshape": 1, "tanh": 1, "transpose": 1}
    assert f.kernels == 3  # reshape and transpose are views
    # matmul reads x and w, writes %0; add reads %0 and b, writes %1; tanh reads %3, writes %4
    assert f.bytes_moved == (128 + 256 + 128) + (128 + 32 + 128) + (128 + 128)
    # %1 overwrites %0 (elementwise, %0 dies there); %4 is the output
    assert f.naive_bytes == 2 * 128 and f.arena_bytes == 128 and f.peak_live_bytes == 128
    assert f.inplace == 1
    assert f.largest is not None and (f.largest.type, f.largest.bytes) == ("f32[4, 8]", 128)
    assert f.composite_temps == {} and f.rules == {}


def test_symbolic_sizes_are_evaluated_under_the_bindings():
    src = MLP.replace("f32[4, 8]", "f32[B, 8]").replace("shape = [8, 4]", "shape = [8, B]") \
        .replace("f32[8, 4]", "f32[8, B]")
    f = graph_figures(parse_air(src), {"B": 4})
    assert f.bytes_moved == (128 + 256 + 128) + (128 + 32 + 128) + (128 + 128)
    assert f.arena_bytes == 128 and f.largest.type == "f32[4, 8]"
    with pytest.raises(ArchirError, match="unbound symbols B"):
        graph_figures(parse_air(src), {})


def test_a_broadcast_view_reads_its_source_only():
    f = graph_figures(parse_air("""
        graph @g(%x: f32[4, 8], %b: f32[8]) -> f32[4, 8] {
          %e = expand(%b) {shape = [4, 8]} : f32[4, 8]
          %y = add(%x, %e) : f32[4, 8]
          return %y
        }
    """), {})
    assert f.kernels == 1 and f.bytes_moved == 128 + 32 + 128
    assert f.arena_bytes == f.naive_bytes == 0 and f.largest is None


def test_attention_left_composite_reports_its_score_matrix():
    f = graph_figures(parse_air("""
        graph @g(%q: f32[1, 2, 6, 4], %k: f32[1, 2, 6, 4], %v: f32[1, 2, 6, 4]) -> f32[1, 2, 6, 4] {
          %o = attention(%q, %k, %v) {causal = true} : f32[1, 2, 6, 4]
          return %o
        }
    """), {})
    temp = f.composite_temps["attention"]
    assert (temp.type, temp.bytes) == ("f32[1, 2, 6, 6]", 1 * 2 * 6 * 6 * 4)
    assert f.arena_bytes == 0  # the scores are no graph value: only the decomposition makes them


FUSED = """
    graph @g(%q: f32[1, 2, 6, 4], %k: f32[1, 2, 6, 4], %v: f32[1, 2, 6, 4]) -> f32[1, 2, 6, 4] {
      %0 = fused(%q, %k, %v) {kind = "attention", rules = "attention"FLASH} : f32[1, 2, 6, 4] body(
          %1: f32[1, 2, 6, 4], %2: f32[1, 2, 6, 4], %3: f32[1, 2, 6, 4]) {
        %4 = transpose(%2) {perm = [0, 1, 3, 2]} : f32[1, 2, 4, 6]
        %5 = matmul(%1, %4) : f32[1, 2, 6, 6]
        %6 = full() {shape = [], value = 0.5} : f32[]
        %7 = mul(%5, %6) : f32[1, 2, 6, 6]
        %8 = softmax(%7) : f32[1, 2, 6, 6]
        %9 = matmul(%8, %3) : f32[1, 2, 6, 4]
        yield %9
      }
      %10 = fused(%0) {kind = "elementwise", rules = "elementwise-chain"} : f32[1, 2, 6, 4] body(
          %11: f32[1, 2, 6, 4]) {
        %12 = tanh(%11) : f32[1, 2, 6, 4]
        %13 = neg(%12) : f32[1, 2, 6, 4]
        yield %13
      }
      %14 = softmax(%10) : f32[1, 2, 6, 4]
      return %14
    }
"""


@pytest.mark.parametrize("flash", [False, True])
def test_fused_groups_are_one_kernel_each_and_only_non_flash_attention_stores_scores(flash: bool):
    f = graph_figures(parse_air(FUSED.replace("FLASH", ", flash = true" if flash else "")), {})
    group = 3 * 192 + 192  # reads q, k, v (f32[1, 2, 6, 4] = 192 B each), writes its result
    assert f.kernels == 3 and f.bytes_moved == group + 2 * (192 + 192)
    assert f.rules == {"attention": 1, "elementwise-chain": 1}
    # %0 dies at the elementwise group, whose result %10 overwrites it in place
    assert f.naive_bytes == 2 * 192 and f.arena_bytes == 192 and f.inplace == 1
    assert "softmax" in f.composite_temps  # the unfused softmax at the end
    if flash:
        assert "fused attention" not in f.composite_temps
    else:
        temp = f.composite_temps["fused attention"]
        assert (temp.type, temp.bytes) == ("f32[1, 2, 6, 6]", 2 * 6 * 6 * 4)


def test_rules_are_counted_from_fused_groups_at_any_depth():
    x = Value(f32[4], "input", "x")

    def fused(rules: object, inner: list[Node] = ()) -> Node:
        node = Node("fused", [x], {"kind": "elementwise", "rules": rules},
                    regions=[Region([Value(f32[4], "region_arg")], list(inner))])
        node.outputs = [Value(f32[4], "result", None, node)]
        return node

    nested = fused(("epilogue",))
    graph = Graph("g", [x], [], [fused("elementwise-chain,epilogue"), fused(("elementwise-chain",), [nested]),
                                  Node("exp", [x], {})], [x])
    assert rules_fired(graph) == {"elementwise-chain": 2, "epilogue": 2}


def test_format_report_shows_both_columns():
    report = pipeline_report(parse_air(MLP), "canonicalize", {})
    text = format_report(report)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert lines[0] == 'report for @mlp (static shapes), pipeline "canonicalize"'
    assert "kernels 3 3" in lines
    assert "bytes moved 1.0 KiB 1.0 KiB" in lines  # 1056 bytes, as counted above
    assert "arena peak 128 B 128 B" in lines and "naive sum of intermediates 256 B 256 B" in lines
    assert "largest intermediate before: f32[4, 8] 128 B (matmul)" in lines
    assert "fusion rules fired: none" in lines


def test_format_bytes_and_parse_sizes():
    assert [format_bytes(n) for n in (0, 1023, 1024, 3 << 20)] == ["0 B", "1023 B", "1.0 KiB", "3.0 MiB"]
    assert parse_sizes("B=1, T=8") == {"B": 1, "T": 8}
    with pytest.raises(ArchirError, match="bad size"):
        parse_sizes("B=one")


def test_copy_graph_is_independent():
    graph = parse_air(MLP)
    clone = copy_graph(graph)
    clone.nodes.pop()
    assert len(graph.nodes) == 5


def _check_sane(f: GraphFigures) -> None:
    assert 0 < f.kernels <= f.nodes
    assert f.peak_live_bytes <= f.arena_bytes <= f.naive_bytes
    assert f.bytes_moved > 0


@pytest.mark.parametrize("model", ["gpt2", "resnet"])
def test_dump_report_of_a_zoo_model(model: str, capsys: pytest.CaptureFixture, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["dump", f"examples/{model}.py:{model}", "--report"]) == 0
    text = capsys.readouterr().out
    sizes = {"gpt2": "B=1, T=8", "resnet": "B=2, H=32, W=32"}[model]  # the zoo's first sizes
    assert text.startswith(f"report for @{model} ({sizes}), pipeline \"canonicalize\"")
    if model == "gpt2":  # unfused attention materialises [B, heads, T, T] scores
        assert re.search(r"largest temp inside attention: before f32\[1, \d+, 8, 8\]", text)


def test_zoo_model_figures_are_sane():
    from archir import zoo

    entry, path = zoo.find("gpt2")
    _, graph = zoo.build(entry, path)
    report = pipeline_report(graph, "canonicalize", {"B": 2, "T": 16})
    _check_sane(report.before)
    _check_sane(report.after)
    assert report.after.nodes <= report.before.nodes


def test_dump_report_needs_sizes_for_symbolic_graphs(tmp_path: Path, capsys: pytest.CaptureFixture):
    path = tmp_path / "g.air"
    path.write_text("graph @g(%x: f32[B, 4]) -> f32[B, 4] {\n  %0 = exp(%x) : f32[B, 4]\n  "
                    "%1 = exp(%0) : f32[B, 4]\n  return %1\n}\n")
    assert main(["dump", str(path), "--report"]) == 1
    assert "add --sizes B=2" in capsys.readouterr().err
    assert main(["dump", str(path), "--report", "--sizes", "B=3"]) == 0
    out = capsys.readouterr().out
    assert "arena peak 64 B 64 B" in " ".join(out.split())  # one f32[3, 4] = 48 B, aligned to 64
