"""The command line on torch model specs (`pkg.module:NAME`, `model.py:NAME` returning (module,
example_inputs[, dynamic_shapes])): import-torch --report, dump, run --check and compile."""

import sys
import textwrap

import pytest

from archir.cli import main
from archir.errors import ModelSpecError
from archir.model_spec import load_model, load_torch_model

MODEL = textwrap.dedent("""
    import torch
    from torch.export import Dim


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            return torch.relu(self.fc(x))


    def net():
        torch.manual_seed(0)
        return Net().eval(), (torch.randn(2, 8),), {"x": {0: Dim("B")}}


    def static():
        torch.manual_seed(0)
        return Net().eval(), (torch.randn(2, 8),)


    def not_torch():
        return 3
""")


@pytest.fixture
def package(tmp_path, monkeypatch):
    (tmp_path / "torchpkg").mkdir()
    (tmp_path / "torchpkg" / "__init__.py").write_text("")
    (tmp_path / "torchpkg" / "models.py").write_text(MODEL)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in ("torchpkg", "torchpkg.models"):
        sys.modules.pop(name, None)


def test_report_lists_the_ops(package, capsys):
    assert main(["import-torch", "--report", "torchpkg.models:net"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ATen coverage of Net: ") and ", 0 unsupported" in out
    assert "aten.linear.default" in out and "fc" in out


def test_dump_takes_a_module_spec_and_keeps_symbols_and_names(package, capsys):
    assert main(["dump", "torchpkg.models:net", "--pipeline", ""]) == 0
    out = capsys.readouterr().out
    assert "%x: f32[B, 8]" in out and "@fc" in out and "fc.weight" in out


def test_run_check_and_compile_take_a_file_spec(package, capsys):
    spec = f"{package / 'torchpkg' / 'models.py'}:static"
    assert main(["run", spec, "--backend", "torch", "--check"]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["compile", spec, "-o", str(package / "out")]) == 0
    assert (package / "out" / "model.py").is_file()


def test_load_torch_model_and_errors(package):
    module, inputs, dynamic = load_torch_model("torchpkg.models:net")
    assert type(module).__name__ == "Net" and inputs[0].shape == (2, 8) and "x" in dynamic
    assert load_torch_model("torchpkg.models:static")[2] is None
    with pytest.raises(ModelSpecError, match="not a torch model"):
        load_torch_model("torchpkg.models:not_torch")
    with pytest.raises(ModelSpecError, match="has no 'absent'"):
        load_model("torchpkg.models:absent")
    with pytest.raises(ModelSpecError, match=r"cannot import 'nopkg\.models'"):
        load_model("nopkg.models:net")
