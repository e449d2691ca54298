"""Implicit-GEMM convolution (gemm_conv.py): the GEMM packs B straight from the image through the
conv window. Checked against torch's conv (the independent reference) over window shapes, tails of
partial panels, several K blocks (taps > kc) and N blocks (positions > nc), groups, conv1d, and a
fused bias + relu epilogue; the loops dump names the kernel and no im2col buffer is allocated."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from archir.backends.llvm.gemm_conv import ConvGeometry
from archir.backends.llvm.loops import print_program
from archir.backends.llvm.lower import lower_graph

from archir.backend import compile_graph
from archir.parser import parse

TOL = {"rtol": 1e-4, "atol": 1e-4}  # f32 sums over up to ~600 taps in a different order than torch


def _conv2d_src(x: tuple[int, ...], w: tuple[int, ...], out: tuple[int, ...], attrs: str,
                tail: str = "") -> str:
    ts = ", ".join(map(str, out))
    body = f"  %0 = conv2d(%x, %w, %b) {{{attrs}}} : f32[{ts}]\n"
    result = "%0"
    if tail:
        body += f"  %1 = {tail}(%0) : f32[{ts}]\n"
        result = "%1"
    return (f"graph @c(%x: f32[{', '.join(map(str, x))}]) -> f32[{ts}] "
            f"params(%w: f32[{', '.join(map(str, w))}], %b: f32[{w[0]}]) {{\n{body}  return {result}\n}}")


CASES = [  # x shape, (out channels, kernel h, kernel w), stride, padding, dilation, groups
    ((2, 6, 30, 40), (8, 3, 3), 1, 1, 1, 1),  # rows longer than a panel
    ((1, 3, 9, 7), (5, 3, 3), 1, 1, 1, 1),  # rows shorter than a panel: every panel wraps
    ((2, 4, 33, 37), (6, 3, 3), 2, 1, 1, 2),  # stride 2, groups
    ((1, 3, 20, 50), (5, 5, 3), 1, 2, 2, 1),  # dilation, wide padding
    ((1, 40, 12, 20), (7, 3, 3), 1, 1, 1, 1),  # 360 taps: more than one K block
    ((1, 2, 70, 70), (3, 3, 3), 1, 1, 1, 1),  # 4900 positions: more than one N block
    ((1, 3, 20, 50), (5, 1, 1), 1, 1, 1, 1),  # 1x1 with padding: not the direct path
]


@pytest.mark.parametrize("x_shape, w_spec, stride, pad, dil, groups", CASES)
def test_implicit_conv_matches_torch(x_shape: tuple[int, ...], w_spec: tuple[int, int, int], stride: int,
                                     pad: int, dil: int, groups: int) -> None:
    c = x_shape[1]
    o, kh, kw = w_spec
    rng = np.random.default_rng(sum(x_shape) + o)
    x = rng.standard_normal(x_shape).astype(np.float32)
    weight = (rng.standard_normal((o, c // groups, kh, kw)) * 0.2).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    want = F.relu(F.conv2d(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias),
                           stride=stride, padding=pad, dilation=dil, groups=groups)).numpy()
    attrs = (f"stride = [{stride}, {stride}], padding = [{pad}, {pad}], dilation = [{dil}, {dil}], "
             f"groups = {groups}")
    graph = parse(_conv2d_src(x_shape, (o, c // groups, kh, kw), want.shape, attrs, "relu"))
    graph.param_data = {"w": weight, "b": bias}
    module = compile_graph(graph, "llvm", use_cache=False)  # canonicalize,fuse: relu in the GEMM's store
    np.testing.assert_allclose(module(x)[0], want, **TOL)
    notes = module.report.notes  # the compile report's arena line: no im2col buffer
    assert any(line.startswith("arena: 0 temps") for line in notes), notes


def test_conv1d_is_an_implicit_gemm_over_one_row() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 300)).astype(np.float32)
    weight = rng.standard_normal((4, 5, 7)).astype(np.float32)
    src = """graph @c(%x: f32[2, 5, 300]) -> f32[2, 4, 148] params(%w: f32[4, 5, 7]) {
  %0 = conv1d(%x, %w) {stride = [2], padding = [1], dilation = [1], groups = 1} : f32[2, 4, 148]
  return %0
}"""
    graph = parse(src)
    graph.param_data = {"w": weight}
    got = compile_graph(graph, "llvm", pipeline="", use_cache=False)(x)[0]
    want = F.conv1d(torch.from_numpy(x), torch.from_numpy(weight), stride=2, padding=1).numpy()
    np.testing.assert_allclose(got, want, **TOL)
    text = print_program(lower_graph(graph))
    assert "call gemm_conv.c5_h1_w300_k1x7_s1x2_p0x1_d1x1(" in text, text
    assert "temp " not in text, text


def test_geometry_key_round_trips_and_rejects_junk() -> None:
    geo = ConvGeometry(64, 56, 56, 3, 3, 1, 1, 1, 1, 1, 1)
    assert ConvGeometry.parse(geo.key) == geo
    assert (geo.out_height, geo.out_width, geo.taps) == (56, 56, 576)
    with pytest.raises(ValueError, match="not a conv geometry key"):
        ConvGeometry.parse("c64_h56")


def test_symbolic_image_size_keeps_the_im2col_path() -> None:
    """Sizes known only at run time: the window geometry is not static, so im2col + GEMM."""
    src = """graph @c(%x: f32[1, 3, H, W]) -> f32[1, 4, H, W] params(%w: f32[4, 3, 3, 3]) {
  %0 = conv2d(%x, %w) {stride = [1, 1], padding = [1, 1], dilation = [1, 1], groups = 1} : f32[1, 4, H, W]
  return %0
}"""
    rng = np.random.default_rng(4)
    graph = parse(src)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    graph.param_data = {"w": weight}
    x = rng.standard_normal((1, 3, 11, 19)).astype(np.float32)
    got = compile_graph(graph, "llvm", pipeline="", use_cache=False)(x)[0]
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(weight), padding=1).numpy()
    np.testing.assert_allclose(got, want, **TOL)
    text = print_program(lower_graph(graph))
    assert "gemm_conv" not in text and "call gemm(" in text, text
