"""The torch importer on small torch.nn modules: names, scopes, symbolic dims, numerics against
eager PyTorch (1e-4, interpreter and torch backend), and the unsupported-op error."""

import pytest
import torch
from archir.frontends.torch import UnsupportedOpsError, coverage_report, from_export
from torch import nn
from torch.export import Dim

import archir
from tests.frontends.torch_check import assert_matches, check_structure


class Mixed(nn.Module):
    """Linear + LayerNorm + GELU + MultiheadAttention, and Conv2d + BatchNorm + ReLU + pools."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)
        self.norm = nn.LayerNorm(16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2)
        self.head = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = nn.functional.gelu(self.norm(self.proj(x)), approximate="tanh")
        a, _ = self.attn(h, h, h)
        y = self.avg(self.pool(torch.relu(self.bn(self.conv(img)))))
        return a.softmax(-1), self.head(y).flatten(1)


class TokenMLP(nn.Module):
    """Embedding, an MLP with exact GELU, casts, reductions and masked_fill."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.mlp = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 8))

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.mlp(self.embed(ids))
        masked = h.masked_fill(ids.unsqueeze(-1) == 0, -1e4)
        return masked.amax(dim=1), (h * 2 - 1).mean(dim=(1, 2), keepdim=True)


def _seeded(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for p in module.parameters():
        p.data.uniform_(-0.5, 0.5)
    for b in module.buffers():
        if b.dtype.is_floating_point:
            b.data.uniform_(0.5, 1.5)
    return module.eval()


@pytest.fixture(scope="module")
def mixed():
    torch.manual_seed(0)
    module = _seeded(Mixed())
    x, img = torch.randn(2, 5, 8), torch.randn(2, 3, 8, 8)
    graph = archir.from_torch(module, (x, img), dynamic_shapes=({0: Dim("B")}, {0: Dim("B")}))
    return module, graph


@pytest.fixture(scope="module")
def token_mlp():
    module = _seeded(TokenMLP())
    ids = torch.randint(0, 20, (2, 6))
    spec = {"ids": {0: Dim("B"), 1: Dim("T")}}
    return module, archir.from_torch(module, (ids,), dynamic_shapes=spec)


def test_mixed_verifies_round_trips_and_keeps_names(mixed):
    _, graph = mixed
    text = check_structure(graph)
    assert [v.name for v in graph.inputs] == ["x", "img"]
    assert str(graph.inputs[0].type) == "f32[B, 5, 8]"
    # parameters and buffers keep their state_dict names; unused num_batches_tracked is dropped
    names = {p.name for p in graph.params}
    assert {"proj.weight", "attn.in_proj_weight", "attn.out_proj.bias", "bn.running_var"} <= names
    assert "bn.num_batches_tracked" not in names
    # nodes carry their module path as their scope
    assert "linear(%x, %proj.weight, %proj.bias) : f32[B, 5, 16] @proj" in text
    assert "@attn.out_proj" in text or "@attn" in text


def test_mixed_matches_eager_at_two_batch_sizes(mixed):
    module, graph = mixed
    for batch in (2, 3):
        torch.manual_seed(batch)
        assert_matches(graph, module, [torch.randn(batch, 5, 8), torch.randn(batch, 3, 8, 8)])


def test_token_mlp_symbolic_dims_run_at_two_sizes(token_mlp):
    module, graph = token_mlp
    check_structure(graph)
    assert str(graph.inputs[0].type) == "i64[B, T]"
    for batch, length in ((2, 6), (3, 9)):
        ids = torch.randint(0, 20, (batch, length), generator=torch.Generator().manual_seed(length))
        ids[0, 0] = 0  # exercise the mask
        assert_matches(graph, module, [ids])


def test_unnamed_dims_get_s0_s1():
    module = _seeded(nn.Linear(4, 3))
    ep = torch.export.export(module, (torch.randn(2, 4),), dynamic_shapes=({0: Dim("N")},))
    graph = from_export(ep, "lin")
    assert str(graph.inputs[0].type) == "f32[s0, 4]"
    assert_matches(graph, module, [torch.randn(5, 4)])


class Spectral(nn.Module):
    """Uses torch.fft, which archir does not map, in two places."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.fft.rfft(self.proj(x), dim=-1)
        return f.real + torch.fft.rfft(x, dim=-1).imag


def test_unsupported_ops_listed_with_counts_and_modules():
    module = _seeded(Spectral())
    ep = torch.export.export(module, (torch.randn(2, 8),), strict=False)
    with pytest.raises(UnsupportedOpsError) as info:
        from_export(ep)
    err = info.value
    assert err.ops, "every unsupported op is listed"
    message = str(err)
    assert "fft" in message and "x2" in message, message
    report = coverage_report(ep, "spectral")
    assert not report.supported
    by_op = {u.op: u for u in report.ops}
    assert by_op["aten.linear.default"].status == "native"
    assert any("fft" in u.op and u.status == "unsupported" for u in report.ops)
    assert "unsupported" in str(report)


def test_training_mode_dropout_is_refused():
    module = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).train()
    ep = torch.export.export(module, (torch.randn(2, 4),), strict=False)
    with pytest.raises(UnsupportedOpsError, match="dropout"):
        from_export(ep)
