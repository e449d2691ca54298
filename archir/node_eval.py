"""Evaluating one node on given arrays with the interpreter's semantics (used by constant folding).

It reuses the interpreter's per-node step, so low-precision rounding, DIMS attributes resolved
under `bindings` and the result shape checks are exactly those of `interpreter.run`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from archir.interpreter import _Env, _run_node
from archir.ir import Node


def evaluate_node(node: Node, arrays: Sequence[np.ndarray],
                  bindings: Mapping[str, int] | None = None) -> list[np.ndarray]:
    """The results of `node` when its inputs hold `arrays`; symbols take sizes from `bindings`."""
    env = _Env()
    for v, a in zip(node.inputs, arrays, strict=True):
        env.values[v] = a
    return _run_node(node, env, dict(bindings or {}))
