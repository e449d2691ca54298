"""A fixed-point (deep-equilibrium style) layer: data-dependent loops with `while` and `cond`.

z <- tanh(W z + U x + b) repeats until the largest change in z falls below a tolerance or a step
budget runs out; W is scaled to spectral norm 1/2, so the map is a contraction and converges.
A `cond` then reads out z* when the solver converged, and falls back on one step from z = 0
(tanh(U x + b)) when it did not. Outputs: the readout and the number of steps taken.
"""

import numpy as np

from archir import Graph, GraphBuilder, Value, f32, i64


def _weights(rng: np.random.Generator, dim: int, features: int) -> dict[str, np.ndarray]:
    w = rng.standard_normal((dim, dim))
    w *= 0.5 / np.linalg.norm(w, ord=2)  # spectral norm 1/2: a contraction under tanh
    return {
        "solver.weight": w.astype(np.float32),
        "inject.weight": (rng.standard_normal((dim, features)) / np.sqrt(features)).astype(np.float32),
        "inject.bias": (0.1 * rng.standard_normal(dim)).astype(np.float32),
        "readout.weight": (rng.standard_normal((features, dim)) / np.sqrt(dim)).astype(np.float32),
    }


def control_flow(features: int = 16, dim: int = 32, tol: float = 1e-5, max_steps: int = 50) -> Graph:
    """x f32[B, features] -> (y f32[B, features], steps i64[])."""
    data = _weights(np.random.default_rng(0), dim, features)
    b = GraphBuilder("control_flow")
    x = b.input("x", f32["B", features])
    p = {name: b.param(name, f32[array.shape], array) for name, array in data.items()}

    with b.scope("inject"):
        injected = b.linear(x, p["inject.weight"], p["inject.bias"])  # U x + b, loop-invariant
    with b.scope("solver"):
        tolerance = b.full(shape=[], value=tol)
        budget = b.full(shape=[], value=float(max_steps), dtype=i64)
        one = b.full(shape=[], value=1.0, dtype=i64)

        def keep_going(z: Value, change: Value, step: Value) -> Value:
            return b.logical_and(b.gt(change, tolerance), b.lt(step, budget))

        def iterate(z: Value, change: Value, step: Value) -> tuple[Value, Value, Value]:
            z_new = b.tanh(b.add(b.linear(z, p["solver.weight"]), injected))
            return z_new, b.max(b.abs(b.sub(z_new, z))), b.add(step, one)

        start = (b.full(shape=["B", dim], value=0.0), b.full(shape=[], value=float("inf")),
                 b.full(shape=[], value=0.0, dtype=i64))
        z, change, steps = b.op("while", *start, regions=[keep_going, iterate])
    with b.scope("readout"):

        def converged(z: Value) -> Value:
            return b.linear(z, p["readout.weight"])

        def fallback(z: Value) -> Value:
            return b.linear(b.tanh(injected), p["readout.weight"])

        y = b.cond(b.le(change, tolerance), z, regions=[converged, fallback])
    b.output(y, steps)
    return b.build()
