"""The docs run: the ```python snippets of docs/dsl.md execute in order in one namespace (each
builds on the ones before; the last compares with Hugging Face GPT-2), and its `archir` shell
commands work.
"""

import re
import shlex
from pathlib import Path

import pytest

from archir.cli import main

ROOT = Path(__file__).resolve().parent.parent
DSL_DOC = ROOT / "docs" / "dsl.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def snippets(path: Path, language: str) -> list[tuple[int, str]]:
    """(first line number, code) of each fenced block in `language`, in order."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        if match.group(1) == language:
            first_line = text.count("\n", 0, match.start(2)) + 1
            found.append((first_line, match.group(2)))
    return found


def test_dsl_doc_snippets_run_in_order(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    blocks = snippets(DSL_DOC, "python")
    assert len(blocks) >= 8
    assert "GPT2LMHeadModel" in blocks[-1][1] and "assert error <" in blocks[-1][1]
    namespace: dict = {"__name__": "docs_dsl"}
    for first_line, code in blocks:
        # padded so tracebacks and DSL error locations give the line in the .md file
        source = "\n" * (first_line - 1) + code
        exec(compile(source, str(DSL_DOC), "exec"), namespace)
    out = capsys.readouterr().out
    assert "max |archir - HF|" in out
    # the outputs the doc shows (its unlabelled blocks) are what the snippets print
    for _, shown_block in snippets(DSL_DOC, ""):
        for line in shown_block.splitlines():
            assert line in out, f"docs/dsl.md shows a line the snippets do not print: {line!r}"
    # the error of section 3 points at the doc's own line of `x @ self.weight`, as the doc shows
    conv_line = next(i for i, line in enumerate(DSL_DOC.read_text().splitlines(), 1)
                     if "return x @ self.weight + self.bias" in line)
    shown = f"docs/dsl.md:{conv_line}: error: matmul inner dims differ"
    assert f"{ROOT}/{shown}" in out
    assert shown in DSL_DOC.read_text(), "the error shown in the doc names a stale line"


def test_dsl_doc_shell_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [line for _, block in snippets(DSL_DOC, "sh") for line in block.splitlines()]
    commands = [line.split("#")[0].strip() for line in lines if line.startswith("archir ")]
    assert any("--format svg" in c for c in commands)
    monkeypatch.chdir(ROOT)  # the doc's paths are relative to the repository root
    for command in commands:
        args = shlex.split(command)[1:]
        if "--format" in args:
            args += ["-o", str(tmp_path / "out.svg")]
        assert main(args) == 0, command
    assert (tmp_path / "out.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_llvm_doc_snippet_runs_and_its_arena_has_no_t_squared_term(capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("llvmlite")
    doc = ROOT / "docs" / "llvm.md"
    (first_line, code), = snippets(doc, "python")
    namespace: dict = {"__name__": "docs_llvm"}
    exec(compile("\n" * (first_line - 1) + code, str(doc), "exec"), namespace)
    report = str(namespace["module"].report)
    assert "pipeline: canonicalize,fuse" in report and "arena:" in report
    arena = next(line for line in report.splitlines() if line.startswith("arena:"))
    assert "T^2" not in arena and "T*T" not in arena, arena  # attention holds no T x T buffer
    assert namespace["logits"].shape == (2, 8, 100)
