"""Pictures: DOT structure (shapes, typed edges, region and scope clusters) and rendered files."""

import re
import shutil

import numpy as np
import pytest

from archir import ArchirError, BackendError, GraphBuilder, f32
from archir.dot import ScopeTree, has_repeated_blocks, scope_tree, to_dot, write_picture

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")


def stacked_graph(blocks: int = 2):
    """Blocks named blocks.<i>.attn.q / blocks.<i>.act, then a scan that captures a parameter."""
    b = GraphBuilder("stack")
    x = b.input("x", f32["B", 8])
    h0 = b.input("h0", f32[8])
    w = b.param("w", f32[8], np.ones(8, np.float32))
    for i in range(blocks):
        wi = b.param(f"blocks.{i}.attn.w", f32[8], np.ones(8, np.float32))
        with b.scope(f"blocks.{i}"):
            with b.scope("attn"):
                y = b.add(b.mul(x, wi, name="q"), w, name="q")
            x = b.gelu(y, approximate="tanh", name="act")
    final, per_step = b.op("scan", h0, x, num_carry=1,
                           regions=[lambda h, xs: (b.add(b.mul(h, w), xs), b.tanh(h))])
    b.output(final, per_step)
    return b.build()


def declared_clusters(source: str) -> dict[str, list[str]]:
    """Each DOT node id -> labels of the clusters it is declared in, outermost first."""
    stack: list[str] = []
    where: dict[str, list[str]] = {}
    pending = False
    for line in source.splitlines():
        text = line.strip()
        if text.startswith("subgraph cluster_"):
            stack.append("?")
            pending = True
        elif text == "}":
            if stack:
                stack.pop()
        elif pending and "label=" in text and "[" not in text:
            stack[-1] = re.search(r'label=("[^"]*"|\S+)', text).group(1).strip('"')
            pending = False
        elif "->" not in text and re.match(r"\w+ \[", text):
            where[text.split(" ", 1)[0]] = list(stack)
    return where


def test_nodes_inputs_params_outputs_and_typed_edges():
    b = GraphBuilder("mlp")
    x = b.input("x", f32["B", 768])
    w = b.param("fc.weight", f32[768, 768])
    y = b.gelu(b.matmul(x, w, name="fc"), approximate="tanh", name="act")
    b.output(b.softmax(y, name="head"))
    source = to_dot(b.build()).source
    assert re.search(r'in0 \[label=<x<br/>.*f32\[B, 768\].*shape=invhouse', source)
    assert re.search(r'p0 \[label=<fc.weight<br/>.*f32\[768, 768\].*fillcolor="#e0e0e0".*shape=box',
                     source)
    assert re.search(r'out0 \[label="output 0".*shape=house', source)
    assert "<b>matmul</b>" in source and 'color="#555555">fc</font>' in source
    assert "approximate=&quot;tanh&quot;" in source  # non-default attribute shown, escaped
    assert "axis=" not in source  # softmax's default axis is left out
    assert 'in0 -> n0 [label="f32[B, 768]"]' in source
    assert 'p0 -> n0 [label="f32[768, 768]"]' in source
    assert 'n2 -> out0 [label="f32[B, 768]"]' in source
    assert "cluster" not in source  # no regions, no repeated blocks


def test_regions_are_clusters_with_args_yield_and_captured_values():
    graph = stacked_graph()
    source = to_dot(graph).source
    where = declared_clusters(source)
    scan_id = next(f"n{k}" for k, n in enumerate(graph.walk()) if n.op == "scan")
    assert where[scan_id] == ["scan"]
    for arg in (f"{scan_id}_r0_a0", f"{scan_id}_r0_a1", f"{scan_id}_r0_yield"):
        assert where[arg] == ["scan", "body"]
    body = [f"n{k}" for k, n in enumerate(graph.walk()) if n.op in ("tanh",)]
    assert where[body[0]] == ["scan", "body"]
    assert f"{scan_id} -> {scan_id}_r0_a0 [style=dashed]" in source
    assert re.search(rf"p0 -> n{int(scan_id[1:]) + 1} \[label=\"f32\[8\]\"\]", source)  # captured w
    assert f'{scan_id}_res -> out1 [label="#1 f32[B, 8]"]' in source


def test_repeated_blocks_nest_by_scope():
    graph = stacked_graph(blocks=3)
    where = declared_clusters(to_dot(graph).source)
    assert where["n0"] == ["blocks", "blocks.0", "blocks.0.attn", "blocks.0.attn.q"]  # mul
    assert where["n2"] == ["blocks", "blocks.0"]  # gelu blocks.0.act, alone in its scope
    assert where["p2"] == ["blocks", "blocks.1", "blocks.1.attn"]  # parameter blocks.1.attn.w
    assert where["p0"] == []  # w has no scope
    flat = declared_clusters(to_dot(graph, clusters=False).source)
    assert flat["n0"] == [] and flat["p2"] == []


def test_scope_tree_folds_single_items_and_chains():
    tree = scope_tree([("a.b.c", "n0"), ("a.b.c", "n1"), ("a.x", "n2"), (None, "n3"), ("z.y", "n4")])
    assert tree.items == ["n3", "n4"]  # z.y held one item: folded up to the top
    assert list(tree.children) == ["a"]
    a = tree.children["a"]
    assert a.items == ["n2"] and a.size() == 3  # a.x folded into a
    chain = a.children["b"]
    assert chain.path == "a.b.c" and chain.items == ["n0", "n1"]  # a.b held only a.b.c
    assert scope_tree([]) == ScopeTree("")


def test_has_repeated_blocks():
    assert has_repeated_blocks(["blocks.0.attn", "blocks.1.attn", None])
    assert has_repeated_blocks(["enc.layers.0.fc", "enc.layers.3.fc"])
    assert not has_repeated_blocks(["blocks.0.attn", "blocks.0.mlp", "head"])
    assert not has_repeated_blocks([None, "fc1", "fc2"])


@needs_dot
def test_write_svg_png_and_dot(tmp_path):
    graph = stacked_graph()
    svg = write_picture(graph, tmp_path / "g.svg", "svg").read_text()
    assert svg.lstrip().startswith(("<?xml", "<svg")) and 'class="cluster"' in svg
    assert "blocks.0.attn" in svg
    png = write_picture(graph, tmp_path / "g.png", "png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    dot_text = write_picture(graph, tmp_path / "g.dot", "dot").read_text()
    assert dot_text == to_dot(graph).source


def test_missing_dot_writes_the_dot_file_and_says_how_to_get_pictures(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(BackendError) as info:
        write_picture(stacked_graph(), tmp_path / "g.svg", "svg")
    dot_path = tmp_path / "g.dot"
    assert dot_path.read_text().startswith("digraph stack {")
    assert not (tmp_path / "g.svg").exists()
    assert str(dot_path) in info.value.message
    assert "apt-get install -y graphviz" in info.value.hint


def test_unknown_format_and_unwritable_path(tmp_path):
    with pytest.raises(ArchirError, match="unknown picture format 'pdf'"):
        write_picture(stacked_graph(), tmp_path / "g.pdf", "pdf")
    with pytest.raises(ArchirError, match="cannot write"):
        write_picture(stacked_graph(), tmp_path / "missing" / "g.dot", "dot")
