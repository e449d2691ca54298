"""The README's quick start is what CI runs and what works: its commands are checked here."""

import re
import shlex
from pathlib import Path

from archir.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ")]


def test_quick_start_has_install_run_and_test_commands():
    install, run, test = quick_start_commands()
    assert 'pip install -e ".[test]" -c constraints.txt' in install
    assert run.startswith("archir ")
    assert test == "python -m pytest"


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    *_, test = quick_start_commands()
    assert ci.strip().splitlines()[-1] == test


def test_quick_start_main_command_runs_and_checks(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    _, run, _ = quick_start_commands()
    assert main(shlex.split(run)[1:]) == 0
    out = capsys.readouterr().out
    assert re.search(r"max_abs_error=\S+ ok", out)
