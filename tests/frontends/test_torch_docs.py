"""docs/torch.md stays true: its ```python snippets run in order, and each coverage report in it
equals a fresh `archir import-torch --report` of the same model.

`python tests/frontends/test_torch_docs.py --write` regenerates the reports in the doc.
"""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "torch.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
REPORT = re.compile(r"^```text\n\$ archir import-torch --report (\S+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
MODELS = [("GPT2LMHeadModel", "examples.torch_hf:gpt2"), ("BertModel", "examples.torch_hf:bert"),
          ("T5Model", "examples.torch_hf:t5"), ("ViTModel", "examples.torch_hf:vit"),
          ("WhisperModel", "examples.torch_hf:whisper"),
          ("MiniLM-L6 (pretrained BertModel)", "examples.torch_hf:minilm")]
FAST = {"examples.torch_hf:vit"}


def normalised(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def doc_reports() -> dict[str, str]:
    return {m.group(1): normalised(m.group(2)) for m in REPORT.finditer(DOC.read_text())}


def fresh_report(spec: str) -> str:
    from archir.cli_torch import coverage_text

    return normalised(coverage_text(spec))


def test_doc_python_snippets_run_in_order():
    blocks = [(m.start(2), m.group(2)) for m in FENCE.finditer(DOC.read_text()) if m.group(1) == "python"]
    assert len(blocks) >= 2
    namespace: dict = {"__name__": "docs_torch"}
    text = DOC.read_text()
    for start, code in blocks:
        source = "\n" * text.count("\n", 0, start) + code  # tracebacks point into the .md file
        exec(compile(source, str(DOC), "exec"), namespace)


def test_doc_has_a_report_for_every_model():
    assert sorted(doc_reports()) == sorted(spec for _, spec in MODELS)


@pytest.mark.parametrize("spec", [pytest.param(s, marks=() if s in FAST else pytest.mark.slow)
                                  for _, s in MODELS])
def test_doc_report_equals_a_fresh_one(spec):
    assert doc_reports()[spec] == fresh_report(spec), \
        "stale: run `python tests/frontends/test_torch_docs.py --write`"


def write() -> None:
    """Put a fresh report of every model into the doc (placeholder REPORTS, or the old blocks)."""
    text = DOC.read_text()
    if "\nREPORTS\n" in text:
        blocks = "".join(f"### {title}\n\n```text\n$ archir import-torch --report {spec}\n```\n\n"
                         for title, spec in MODELS)
        text = text.replace("\nREPORTS\n", "\n" + blocks.rstrip("\n") + "\n")
    for _, spec in MODELS:
        report = fresh_report(spec)
        print(report.splitlines()[0], file=sys.stderr)
        pattern = re.compile(rf"^```text\n\$ archir import-torch --report {re.escape(spec)}\n.*?^```",
                             re.MULTILINE | re.DOTALL)
        block = f"```text\n$ archir import-torch --report {spec}\n{report}\n```"
        text = pattern.sub(lambda _, block=block: block, text)
    DOC.write_text(text)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        sys.exit("usage: python tests/frontends/test_torch_docs.py --write")
