"""The `archir` command, through `main([...])` and once through the installed console script."""

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from archir import GraphBuilder, boolean, f32, i64, zoo
from archir import backend as backend_module
from archir import pass_manager as pm
from archir.backend import CompiledModule, CompileReport, available_backends
from archir.cli import main
from archir.interpreter import run as interpret
from archir.model_spec import load_model
from archir.printer import print_graph
from archir.registry import all_ops
from archir.serialize import load, save

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10 - 0.5
BIAS = np.array([0.1, -0.2, 0.3], np.float32)


@pytest.fixture
def net_air(tmp_path):
    """relu(x @ w + bias) with x: f32[B, 4], saved with its weights."""
    b = GraphBuilder("net")
    x = b.input("x", f32["B", 4])
    w = b.param("fc.w", f32[4, 3], W)
    bias = b.param("fc.b", f32[3], BIAS)
    b.output(b.relu(b.add(b.matmul(x, w, name="fc"), bias, name="fc")))
    return save(b.build(), tmp_path / "net.air")


@pytest.fixture
def toy_passes(monkeypatch):
    """Two passes of our own, so these tests do not depend on what the built-in passes do."""

    def rename(graph):
        graph.name += "_renamed"
        return graph

    monkeypatch.setattr(pm, "_loaded", True)
    monkeypatch.setitem(pm._PASSES, "t-rename", pm.PassInfo("t-rename", rename, "Rename the graph."))
    monkeypatch.setitem(pm._PASSES, "t-keep", pm.PassInfo("t-keep", lambda g: g, "Change nothing."))


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# -- dump -----------------------------------------------------------------------------------------
def test_dump_prints_the_graph(capsys, net_air):
    code, out, _ = cli(capsys, "dump", net_air)
    assert code == 0
    assert out == print_graph(load(net_air))


def test_dump_print_after_all_shows_each_pass(capsys, net_air, toy_passes):
    code, out, err = cli(capsys, "dump", net_air, "--pipeline", "t-rename,t-keep", "--print-after-all",
                         "--timings")
    assert code == 0
    headers = re.findall(r"^# IR after (\S+)", out, flags=re.M)
    assert headers == ["t-rename", "t-keep"]
    assert out.count("graph @net_renamed(") == 3  # after each pass, then the result
    assert "graph @net(" not in out
    assert re.search(r"^t-rename\s+[\d.]+", err, flags=re.M) and "total" in err


def test_dump_runs_canonicalize_by_default(capsys, net_air):
    code, out, _ = cli(capsys, "dump", net_air, "--print-after-all")
    assert code == 0
    for name in ("simplify", "fold-constants", "cse", "dce"):
        assert f"# IR after {name}" in out


def test_dump_backend_stages(capsys, net_air):
    code, out, _ = cli(capsys, "dump", net_air, "--backend", "torch", "--emit", "python")
    assert code == 0 and "def forward(p" in out
    code, out, _ = cli(capsys, "dump", net_air, "--backend", "llvm", "--emit", "loops")
    assert code == 0 and out.startswith("func @") and "kernel " in out
    code, _, err = cli(capsys, "dump", net_air, "--backend", "llvm", "--emit", "nope")
    assert code == 1 and "has no stage 'nope'" in err


def test_dump_after_named_passes(capsys, net_air, toy_passes):
    code, out, _ = cli(capsys, "dump", net_air, "--pipeline", "t-rename,t-keep", "--after", "t-keep")
    assert code == 0 and re.findall(r"^# IR after (\S+)", out, flags=re.M) == ["t-keep"]
    code, _, err = cli(capsys, "dump", net_air, "--pipeline", "t-keep", "--after", "t-rename")
    assert code == 1 and "--after names passes not in the pipeline: t-rename" in err


def test_dump_to_text_file_keeps_weights(capsys, net_air, tmp_path, toy_passes):
    out_path = tmp_path / "out" / "copy.air"
    out_path.parent.mkdir()
    code, out, _ = cli(capsys, "dump", net_air, "--pipeline", "t-keep", "-o", out_path)
    assert code == 0 and out == ""
    copy = load(out_path)
    np.testing.assert_array_equal(copy.param_data["fc.w"], W)
    assert print_graph(copy) == print_graph(load(net_air))


def test_dump_dot_to_stdout(capsys, net_air):
    code, out, _ = cli(capsys, "dump", net_air, "--format", "dot")
    assert code == 0 and out.startswith("digraph net {") and 'label="f32[B, 3]"' in out


@needs_dot
def test_dump_svg_and_png(capsys, net_air, tmp_path, monkeypatch):
    code, _, err = cli(capsys, "dump", net_air, "--format", "svg", "-o", tmp_path / "pic.svg")
    assert code == 0 and f"wrote {tmp_path / 'pic.svg'}" in err
    assert (tmp_path / "pic.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    monkeypatch.chdir(tmp_path)
    code, _, _ = cli(capsys, "dump", net_air, "--format", "png")  # default name: <graph name>.png
    assert code == 0
    assert (tmp_path / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dump_without_dot_program_writes_dot_file(capsys, net_air, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    code, _, err = cli(capsys, "dump", net_air, "--format", "svg", "-o", tmp_path / "pic.svg")
    assert code == 1
    assert (tmp_path / "pic.dot").read_text().startswith("digraph net {")
    assert str(tmp_path / "pic.dot") in err and "apt-get install -y graphviz" in err


# -- verify ---------------------------------------------------------------------------------------
def test_verify_ok(capsys, net_air):
    code, out, _ = cli(capsys, "verify", net_air)
    assert (code, out) == (0, "ok: @net (3 nodes)\n")


@pytest.mark.parametrize("body, where, message", [
    ("  %0 = relu(%x) : f32[3]\n  %1 = exp(%x) : f32[2]\n  return %1\n", "2:3",
     "result 0 of relu is declared f32[3] but inference gives f32[2]"),
    ("  %0 = relu(%x : f32[2]\n  return %0\n", "2:16", "expected ')', found ':'"),
    ("  %0 = reluu(%x) : f32[2]\n  return %0\n", "2:8", "unknown op 'reluu'"),
])
def test_verify_reports_file_line_col(capsys, tmp_path, body, where, message):
    path = tmp_path / "bad.air"
    path.write_text("graph @g(%x: f32[2]) -> f32[2] {\n" + body + "}\n")
    code, out, err = cli(capsys, "verify", path)
    assert code == 1 and out == ""
    assert err.startswith(f"{path}:{where}: error: {message}")


# -- run ------------------------------------------------------------------------------------------
def parse_run(out):
    pattern = r"output (\d+): (\w+)\[([\d, ]*)\] sum=(\S+) sum_abs=(\S+)"
    return [re.fullmatch(pattern, line).groups() for line in out.splitlines() if line.startswith("output")]


def parse_check(out):
    """[(output index or None for the overall line, max abs error, verdict)]."""
    rows = []
    for line in out.splitlines():
        if m := re.fullmatch(r"check: output (\d+) max_abs_error=(\S+) tol=\S+ (ok|FAIL)", line):
            rows.append((int(m[1]), float(m[2]), m[3]))
        elif m := re.fullmatch(r"check: \S+ vs interp max_abs_error=(\S+) (ok|FAIL)", line):
            rows.append((None, float(m[1]), m[2]))
    return rows


class NoisyModule(CompiledModule):
    """The interpreter plus 1e-3 on every float output: a backend wrong by a known amount."""

    def run(self, arrays, bindings):
        return [o + np.float32(1e-3) for o in interpret(self.graph, *arrays)]

    def write_artifact(self, out_dir):
        path = Path(out_dir) / "noisy.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.graph.name)
        return [path]


@pytest.fixture
def noisy_backend(monkeypatch):
    available_backends()  # plugins first, so loading them later cannot undo the patch
    monkeypatch.setitem(backend_module._BACKENDS, "noisy",
                        lambda graph, **_: NoisyModule(graph, CompileReport("noisy")))


def test_run_prints_checksums_of_the_reference_result(capsys, net_air):
    code, out, _ = cli(capsys, "run", net_air, "--backend", "interp", "--seed", "7", "--sizes", "B=5")
    assert code == 0
    [(index, dtype, shape, total, total_abs)] = parse_run(out)
    assert (index, dtype, shape) == ("0", "f32", "5, 3")
    x = np.random.default_rng(7).standard_normal((5, 4)).astype(np.float32)
    want = np.maximum(x.astype(np.float64) @ W + BIAS, 0)  # independent float64 reference
    assert float(total) == pytest.approx(want.sum(), rel=1e-5)
    assert float(total_abs) == pytest.approx(np.abs(want).sum(), rel=1e-5)
    assert len(total.split(".")[1]) > 6  # full precision, not rounded for show


def test_run_defaults_sizes_and_handles_int_and_bool_inputs(capsys, tmp_path):
    b = GraphBuilder("mixed")
    ids = b.input("ids", i64["B", "T"])
    keep = b.input("keep", boolean["B", "T"])
    b.output(b.where(keep, ids, b.neg(ids)), b.cast(keep, dtype=f32))
    save(b.build(), tmp_path / "mixed.air")
    code, out, _ = cli(capsys, "run", tmp_path / "mixed.air", "--sizes", "T=3")
    assert code == 0
    rows = parse_run(out)
    assert [r[:3] for r in rows] == [("0", "i64", "2, 3"), ("1", "f32", "2, 3")]
    assert 0 <= float(rows[0][4]) <= 9 * 6  # ints drawn from [0, 10)
    assert 0 <= float(rows[1][3]) <= 6


def test_run_torch_check_on_builder_model(capsys):
    code, out, _ = cli(capsys, "run", "examples/mlp.py:mlp", "--backend", "torch", "--check", "--seed", "3")
    assert code == 0
    [(_, dtype, shape, total, total_abs)] = parse_run(out)
    assert (dtype, shape) == ("f32", "2, 768")
    x = np.random.default_rng(3).standard_normal((2, 768)).astype(np.float32)
    [want] = interpret(load_model("examples/mlp.py:mlp"), x)
    scale = np.abs(want.astype(np.float64)).sum()
    assert abs(float(total) - want.astype(np.float64).sum()) <= 1e-5 * scale  # f32 torch vs interpreter
    assert float(total_abs) == pytest.approx(scale, rel=1e-5)
    checks = parse_check(out)
    assert [c[0] for c in checks] == [0, None] and all(c[2] == "ok" and c[1] <= 1e-4 for c in checks)


def test_run_torch_check_on_dsl_zoo_model_uses_its_sizes(capsys):
    code, out, _ = cli(capsys, "run", "examples/gpt2.py:gpt2", "--backend", "torch", "--check")
    assert code == 0
    sizes = zoo.find("gpt2")[0].sizes[0]  # an example's first checked sizes are the defaults
    assert [r[1:3] for r in parse_run(out)] == [("f32", f"{sizes['B']}, {sizes['T']}, 100")]  # vocab 100
    assert all(verdict == "ok" and error <= 1e-4 for _, error, verdict in parse_check(out))
    code, out, _ = cli(capsys, "run", "examples/gpt2.py:gpt2", "--backend", "torch", "--sizes", "B=3,T=5")
    assert code == 0 and parse_run(out)[0][2] == "3, 5, 100"


def test_run_check_fails_above_tolerance(capsys, net_air, noisy_backend):
    code, out, _ = cli(capsys, "run", net_air, "--backend", "noisy", "--check")
    checks = parse_check(out)
    assert code == 1 and checks[-1][2] == "FAIL" and checks[-1][1] == pytest.approx(1e-3, rel=1e-3)
    code, out, _ = cli(capsys, "run", net_air, "--backend", "noisy", "--check", "--tol", "2e-3")
    assert code == 0 and parse_check(out)[-1][2] == "ok"


def test_run_reports_a_backend_failing_on_the_inputs(capsys, tmp_path):
    b = GraphBuilder("emb")
    ids = b.input("ids", i64["B"])
    b.output(b.embedding(ids, b.param("table", f32[3, 2], np.ones((3, 2), np.float32))))
    save(b.build(), tmp_path / "emb.air")
    code, out, err = cli(capsys, "run", tmp_path / "emb.air", "--backend", "torch", "--sizes", "B=40")
    assert code == 1 and out == ""  # ids drawn from [0, 10) overrun the 3-row table
    assert err.startswith("archir: error: backend torch failed: IndexError")
    assert "sizes B=40, integers in [0, 10)" in err


@pytest.mark.parametrize("extra, message", [
    (["--sizes", "B3"], "bad size 'B3' in --sizes"),
    (["--sizes", "B=0"], "bad size 'B=0' in --sizes"),
    (["--sizes", "B=2,Q=4"], "--sizes names symbols that @net does not have: Q"),
    (["--backend", "llvm-nope"], "unknown backend 'llvm-nope'"),
])
def test_run_argument_errors_are_clean(capsys, net_air, extra, message):
    code, out, err = cli(capsys, "run", net_air, *extra)
    assert code == 1 and out == "" and err.startswith(f"archir: error: {message}")
    assert "hint:" in err


# -- compile --------------------------------------------------------------------------------------
def test_compile_torch_writes_runnable_code(capsys, tmp_path):
    code, out, _ = cli(capsys, "compile", "examples/mlp.py:mlp", "--backend", "torch", "-o", tmp_path / "art")
    assert code == 0
    written = re.findall(r"^wrote (\S+) \((\d+) bytes\)$", out, flags=re.M)
    assert {Path(p).name for p, _ in written} >= {"model.py", "weights.npz"}
    assert all(Path(p).stat().st_size == int(n) > 0 for p, n in written)
    spec = importlib.util.spec_from_file_location("_test_cli_artifact", tmp_path / "art" / "model.py")
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    params = {k: torch.from_numpy(v) for k, v in np.load(tmp_path / "art" / "weights.npz").items()}
    x = np.random.default_rng(1).standard_normal((3, 768)).astype(np.float32)
    [got] = generated.forward(params, torch.from_numpy(x))
    [want] = interpret(load_model("examples/mlp.py:mlp"), x)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-4, rtol=0)


def test_compile_uses_the_compiled_modules_own_writer(capsys, net_air, tmp_path, noisy_backend):
    code, out, _ = cli(capsys, "compile", net_air, "--backend", "noisy", "-o", tmp_path)
    assert code == 0 and out == f"wrote {tmp_path / 'noisy.txt'} (3 bytes)\n"
    assert (tmp_path / "noisy.txt").read_text() == "net"


# -- zoo ------------------------------------------------------------------------------------------
def zoo_rows(out):
    lines = out.splitlines()
    header = lines[0].split()
    return header, {line.split()[0]: line for line in lines[1:]}


def test_zoo_list_shows_every_example_untested(capsys):
    code, out, _ = cli(capsys, "zoo", "list")
    header, rows = zoo_rows(out)
    assert code == 0 and header[:4] == ["name", "family", "params", "reference"]
    assert {"interp", "torch"} <= set(header[4:])
    assert set(rows) == {entry.name for entry, _ in zoo.entries()}
    for entry, _ in zoo.entries():
        assert entry.family in rows[entry.name] and entry.reference in rows[entry.name]
        assert rows[entry.name].endswith("  ".join(["untested"] * len(header[4:])))
    # GPT2Config(vocab=100, max_len=64, dim=32, layers=2), by hand: 3200 + 2048 + 2 * 12704 + 64
    assert re.search(r"\s30,720\s", rows["gpt2"])


def test_zoo_list_check_fills_the_status(capsys, monkeypatch, noisy_backend):
    gpt2 = zoo.find("gpt2")
    monkeypatch.setattr(zoo, "entries", lambda: [gpt2])
    code, out, _ = cli(capsys, "zoo", "list", "--check", "--backend", "interp", "--backend", "noisy")
    header, rows = zoo_rows(out)
    assert code == 1 and header[4:] == ["interp", "noisy"]
    assert re.search(r"ok \S+\s+FAIL 1\.0e-03$", rows["gpt2"])


def test_zoo_check_gpt2_on_torch(capsys):
    code, out, _ = cli(capsys, "zoo", "check", "gpt2", "--backend", "torch")
    rows = re.findall(r"^gpt2  torch  (\S+)  max_abs_error=(\S+)  tol=(\S+)  (ok|FAIL)$", out, flags=re.M)
    assert code == 0 and len(rows) == len(zoo.find("gpt2")[0].sizes)
    assert all(float(error) <= float(tol) == 1e-4 and verdict == "ok" for _, error, tol, verdict in rows)
    assert out.endswith("2 of 2 checks passed\n")


def test_zoo_check_failure_exits_nonzero(capsys, noisy_backend):
    code, out, _ = cli(capsys, "zoo", "check", "gpt2", "--backend", "noisy")
    assert code == 1 and out.count("  FAIL\n") == 2 and "0 of 2 checks passed" in out


# -- ops and passes -------------------------------------------------------------------------------
def test_ops_lists_every_op_with_signature_and_traits(capsys):
    code, out, _ = cli(capsys, "ops")
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(all_ops())
    assert "add(a, b) [broadcast, commutative, elementwise]" in lines
    assert "scan(*operands) {num_carry: int, axis: int = 0, reverse: bool = false} regions(body) " \
           "[control]" in lines


def test_passes_lists_names_docs_and_aliases(capsys, toy_passes, monkeypatch):
    monkeypatch.setitem(pm._ALIASES, "t-both", "t-rename,t-keep")
    code, out, _ = cli(capsys, "passes")
    assert code == 0
    assert re.search(r"^t-keep\s+Change nothing\.$", out, flags=re.M)
    assert re.search(r"^t-rename\s+Rename the graph\.$", out, flags=re.M)
    assert re.search(r"^t-both\s+= t-rename,t-keep$", out, flags=re.M)
    assert pm.all_aliases()["t-both"] == "t-rename,t-keep"


def test_backends_lists_the_registered_ones(capsys, noisy_backend):
    code, out, _ = cli(capsys, "backends")
    assert code == 0 and {"interp", "torch", "noisy"} <= set(out.split())


# -- user mistakes --------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["dump", "missing.air"], "archir: error: no such file: missing.air"),
    (["dump", "model.py"], "archir: error: model 'model.py' names no graph"),
    (["run", "nowhere.py:make"], "archir: error: no such file: nowhere.py"),
    (["dump", "{tmp}/bad.air"], "{tmp}/bad.air:1:1: error: expected 'graph', found 'grph'"),
    (["dump", "{air}", "--pipeline", "no-such-pass"], "archir: error: unknown pass 'no-such-pass'"),
    (["compile", "{air}", "--backend", "interp", "-o", "{tmp}/out"],
     "archir: error: backend interp cannot write artifacts"),
    (["compile", "{air}", "--backend", "nope", "-o", "{tmp}/out"], "archir: error: unknown backend 'nope'"),
    (["compile", "{air}", "-o", "{air}"], "archir: error: File exists: {air}"),
    (["zoo", "check", "no-such-model"], "archir: error: no zoo example named 'no-such-model'"),
    (["zoo", "check"], "archir: error: name zoo examples to check, or give --all"),
    (["zoo", "check", "gpt2", "--all"], "archir: error: name zoo examples to check, or give --all"),
    (["zoo", "check", "gpt2", "--backend", "nope"], "archir: error: unknown backend 'nope'"),
    (["zoo", "list", "--backend", "nope"], "archir: error: unknown backend 'nope'"),
])
def test_user_mistakes_are_one_clean_message(capsys, tmp_path, net_air, toy_passes, argv, message):
    (tmp_path / "bad.air").write_text("grph @g() -> f32[1] {}\n")
    argv = [a.format(tmp=tmp_path, air=net_air) for a in argv]
    code, out, err = cli(capsys, *argv)
    assert code == 1 and out == "" and err.startswith(message.format(tmp=tmp_path, air=net_air))
    assert len(err.splitlines()) <= 3  # the message, a hint, perhaps the node


@pytest.mark.parametrize("argv", [["dump"], ["zoo"], ["compile", "m.air"], ["run", "m.air", "--tol", "x"]])
def test_usage_errors_exit_2(capsys, argv):
    code, _, err = cli(capsys, *argv)
    assert code == 2 and f"usage: archir {argv[0]}" in err


@pytest.mark.skipif(shutil.which("archir") is None, reason="run `pip install -e .` for the console script")
def test_console_script(net_air, tmp_path):
    ok = subprocess.run(["archir", "verify", str(net_air)], capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stdout) == (0, "ok: @net (3 nodes)\n")
    missing = subprocess.run(["archir", "run", "nowhere.py:f"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("archir: error: no such file: nowhere.py")


def test_dump_with_a_backend_shows_what_compile_makes_of_the_model(capsys):
    """With --backend, dump runs that backend's pipeline (canonicalize,fuse for llvm), as
    archir.compile does; --pipeline still overrides it."""
    pytest.importorskip("llvmlite")
    code, fused, _ = cli(capsys, "dump", "examples/gpt2.py:gpt2", "--backend", "llvm", "--emit", "loops")
    assert code == 0 and re.search(r"kernel k\d+_fused", fused) and "call flash." in fused
    code, plain, _ = cli(capsys, "dump", "examples/gpt2.py:gpt2", "--backend", "llvm", "--emit", "loops",
                         "--pipeline", "canonicalize")
    assert code == 0 and not re.search(r"kernel k\d+_fused", plain)
