"""Keeps bench/models.py from rotting: runs it at --smoke sizes with the torch-backed contenders
(torch eager and archir's torch backend) and checks every workload ran and agreed with eager."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "models.py"
WORKLOADS = ("mlp[", "ln-gelu[", "softmax[", "gpt2-block[1,8,", "gpt2-block[1,16,", "lstm[",
             "resnet-basic-block[", "gpt2-decode[", "call-overhead[")


def _load_models(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_models", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_models_bench_runs_at_smoke_sizes(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    models = _load_models(monkeypatch)
    argv = [str(BENCH), "--smoke", "--contenders", "torch-eager,archir-torch", "--reps", "2",
            "--warmup", "1", "--gap", "0", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    started = time.perf_counter()
    models.main()
    elapsed = time.perf_counter() - started
    out = capsys.readouterr().out
    assert elapsed < 20, f"the smoke run took {elapsed:.1f} s (4 to 8 s measured on 2 loaded cores)"
    assert "error:" not in out, out
    lines = out.splitlines()
    numerics = lines.index(next(line for line in lines if line.startswith("## Max abs difference")))
    checked = [line for line in lines[numerics:] if line.startswith("| ") and "[" in line][:len(WORKLOADS)]
    for workload in WORKLOADS:
        row = next((line for line in checked if line.startswith(f"| {workload}")), None)
        assert row is not None, f"no numerics row for {workload}:\n{out}"
        assert row.rstrip(" |").endswith("ok"), f"archir-torch disagrees with torch eager: {row}"
    medians = lines.index(next(line for line in lines if line.startswith("## Best sample")))
    timed = [line for line in lines[:medians] if line.startswith("| ") and "[" in line]
    assert len(timed) == len(WORKLOADS), out
    assert all(" ms |" in line or " µs |" in line for line in timed), out


def test_fusion_llvm_bench_times_a_zoo_model_fused_and_unfused(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("llvmlite")
    path = BENCH.parent / "fusion_llvm.py"
    monkeypatch.syspath_prepend(str(BENCH.parent))  # it imports harness from bench/
    spec = importlib.util.spec_from_file_location("bench_fusion_llvm", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--only", "mlp_classifier", "--reps", "1", "--warmup", "0", "--gap", "0",
                        "--threads", "1", "--batch-scale", "1"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| mlp_classifier"))
    assert "error" not in row, row
    assert float(row.rstrip(" |").split("|")[-1]) <= 1e-4, row  # fused vs unfused outputs


def test_fused_kernels_bench_times_a_row_kernel_against_torch(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("llvmlite")
    path = BENCH.parent / "fused_kernels.py"
    monkeypatch.syspath_prepend(str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("bench_fused_kernels", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclass looks the module up there
    spec.loader.exec_module(module)
    argv = [str(path), "--only", "rms_norm", "--reps", "1", "--gap", "0", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    module.main()
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| rms_norm"))
    cells = [c.strip() for c in row.strip(" |").split("|")]
    assert len(cells) == 6, row
    assert float(cells[-1]) <= 1e-5, row  # llvm fused vs torch eager, max abs difference
