"""The `archir` command, through `main([...])` and once through the installed console script."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from archir import GraphBuilder, boolean, f32, i64
from archir import pass_manager as pm
from archir.cli import main
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
    return [re.fullmatch(pattern, line).groups() for line in out.splitlines()]


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


@pytest.mark.parametrize("extra, message", [
    (["--sizes", "B3"], "bad size 'B3' in --sizes"),
    (["--sizes", "B=0"], "bad size 'B=0' in --sizes"),
    (["--sizes", "B=2,Q=4"], "--sizes names symbols that @net does not have: Q"),
    (["--backend", "llvm-nope"], "unknown backend 'llvm-nope'"),
])
def test_run_argument_errors_are_clean(capsys, net_air, extra, message):
    code, out, err = cli(capsys, "run", net_air, *extra)
    assert code == 1 and out == "" and message in err
    assert "hint:" in err


# -- ops and passes -------------------------------------------------------------------------------
def test_ops_lists_every_op_with_signature_and_traits(capsys):
    code, out, _ = cli(capsys, "ops")
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(all_ops())
    assert "add(a, b) [broadcast, commutative, elementwise]" in lines
    assert "scan(*operands) {num_carry: int, axis: int = 0, reverse: bool = false} regions(body) " \
           "[control]" in lines


def test_passes_lists_names_and_docs(capsys, toy_passes):
    code, out, _ = cli(capsys, "passes")
    assert code == 0
    assert re.search(r"^t-keep\s+Change nothing\.$", out, flags=re.M)
    assert re.search(r"^t-rename\s+Rename the graph\.$", out, flags=re.M)


# -- user mistakes --------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["dump", "missing.air"], "no such file: missing.air"),
    (["dump", "model.py"], "model 'model.py' names no graph"),
    (["run", "nowhere.py:make"], "no such file: nowhere.py"),
    (["dump", "{tmp}/bad.air"], "bad.air:1:1: error: expected 'graph', found 'grph'"),
    (["dump", "{air}", "--pipeline", "no-such-pass"], "unknown pass 'no-such-pass'"),
])
def test_user_mistakes_are_one_clean_message(capsys, tmp_path, net_air, toy_passes, argv, message):
    (tmp_path / "bad.air").write_text("grph @g() -> f32[1] {}\n")
    argv = [a.format(tmp=tmp_path, air=net_air) for a in argv]
    code, out, err = cli(capsys, *argv)
    assert code == 1 and out == "" and message in err


def test_usage_errors_exit_2(capsys):
    code, _, err = cli(capsys, "dump")
    assert code == 2 and "usage: archir dump" in err


@pytest.mark.skipif(shutil.which("archir") is None, reason="run `pip install -e .` for the console script")
def test_console_script(net_air, tmp_path):
    ok = subprocess.run(["archir", "verify", str(net_air)], capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stdout) == (0, "ok: @net (3 nodes)\n")
    bad_path = tmp_path / "bad.air"
    bad_path.write_text("graph @g(%x: f32[2]) -> f32[2] {\n  return %y\n}\n")
    bad = subprocess.run(["archir", "verify", str(bad_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith(f"{bad_path}:2:10: error: use of undefined value %y")
