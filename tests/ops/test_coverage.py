"""Every registered op is executed by the interpreter in some test under tests/ops.

The record comes from tests/ops/conftest.py (it wraps the interpreter's per-node function), so an
op counts only when its numpy impl really ran, not when its name merely appears in a test source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archir import GraphBuilder, f32
from archir.interpreter import run
from archir.registry import all_ops
from tests.ops.conftest import DESELECTED, EXECUTED, OPS_DIR


def test_the_recorder_sees_ops_inside_regions(request: pytest.FixtureRequest) -> None:
    b = GraphBuilder("probe")
    xs = b.input("xs", f32[3, 2])
    c0 = b.input("c0", f32[2])
    total, _ = b.scan(c0, xs, num_carry=1, regions=[lambda c, x: (b.add(c, x), b.exp(x))])
    b.output(total)
    (got,) = run(b.build(), np.ones((3, 2), np.float32), np.zeros(2, np.float32))
    np.testing.assert_array_equal(got, np.full(2, 3.0, np.float32))
    me = request.node.nodeid
    assert {op for op, tests in EXECUTED.items() if me in tests} == {"scan", "add", "exp"}


def _partial_run(session: pytest.Session) -> str | None:
    """Why this run cannot judge coverage (some tests/ops tests were not selected), or None."""
    selected = {Path(str(i.fspath)).resolve().name for i in session.items}
    missing = sorted(p.name for p in OPS_DIR.glob("test_*.py") if p.name not in selected)
    if missing:
        return f"test files not selected: {', '.join(missing)}"
    if DESELECTED:
        return f"{len(DESELECTED)} tests under tests/ops were deselected"
    return None


def test_every_registered_op_is_executed_by_some_op_test(request: pytest.FixtureRequest) -> None:
    reason = _partial_run(request.session)
    if reason is not None:
        pytest.skip(f"op coverage needs the whole of tests/ops: {reason}")
    # this file's own probes do not count: only the op tests proper
    own = request.node.nodeid.split("::")[0] + "::"
    executed = {op for op, tests in EXECUTED.items() if any(not t.startswith(own) for t in tests)}
    missing = sorted(op.name for op in all_ops() if op.name not in executed)
    assert not missing, (f"no test under tests/ops runs these ops on the interpreter: {missing}; "
                         "add a test against a PyTorch (or other independent) reference")
