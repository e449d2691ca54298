"""Op-coverage bookkeeping for tests/ops: which ops the interpreter actually ran during these tests.

Every test here runs with the interpreter's per-node function wrapped so that the op name of each
node it executes (regions included) is recorded; test_coverage.py runs last and reads the record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import archir.interpreter

OPS_DIR = Path(__file__).resolve().parent
COVERAGE_FILE = OPS_DIR / "test_coverage.py"

# op name -> ids of the tests in which the interpreter executed it
EXECUTED: dict[str, set[str]] = {}
# tests under tests/ops that were collected but not selected (-k, -m, --lf ...)
DESELECTED: list[str] = []


def _in_ops_dir(item: pytest.Item) -> bool:
    return Path(str(item.fspath)).resolve().parent == OPS_DIR


@pytest.fixture(autouse=True)
def record_executed_ops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    original = archir.interpreter._run_node
    test_id = request.node.nodeid

    def recording(node: Any, env: Any, bindings: Any) -> Any:
        EXECUTED.setdefault(node.op, set()).add(test_id)
        return original(node, env, bindings)

    # raising=True: if the interpreter renames its per-node function, this fails loudly
    monkeypatch.setattr(archir.interpreter, "_run_node", recording, raising=True)
    yield


def pytest_deselected(items: list[pytest.Item]) -> None:
    DESELECTED.extend(i.nodeid for i in items if _in_ops_dir(i) and i.get_closest_marker("slow") is None)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    # The coverage check reads what the other tests recorded, so it must run after all of them.
    last = [i for i in items if Path(str(i.fspath)).resolve() == COVERAGE_FILE]
    items[:] = [i for i in items if i not in last] + last
