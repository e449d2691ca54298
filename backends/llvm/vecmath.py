"""Vectorised transcendental functions for the LLVM backend: `math_function(module, name, ty)`.

Each function is branch-free LLVM IR (selects, no libm calls; sin/cos of finite |x| > 2e8 take a
cold libm branch) on f32, f64 or a vector of either,
declared once per module with internal linkage and alwaysinline. Accuracy (measured against
float64/scipy references in tests/backends/llvm/test_vecmath.py) is listed in ACCURACY.
"""

from __future__ import annotations

from collections.abc import Callable

from archir.backends.llvm import vecmath_activation, vecmath_erf, vecmath_exp, vecmath_trig
from archir.backends.llvm.math_builder import MathBuilder, mangled
from llvmlite import ir

from archir.errors import OpDefinitionError

Body = Callable[..., ir.Value]

FUNCTIONS: dict[str, tuple[Body, int]] = {
    "exp": (vecmath_exp.exp, 1),
    "expm1": (vecmath_exp.expm1, 1),
    "log": (vecmath_exp.log, 1),
    "log1p": (vecmath_exp.log1p, 1),
    "pow": (vecmath_exp.pow_, 2),
    "tanh": (vecmath_activation.tanh, 1),
    "sigmoid": (vecmath_activation.sigmoid, 1),
    "silu": (vecmath_activation.silu, 1),
    "gelu_tanh": (vecmath_activation.gelu_tanh, 1),
    "erf": (vecmath_erf.erf, 1),
    "gelu": (vecmath_erf.gelu, 1),
    "sin": (vecmath_trig.sin, 1),
    "cos": (vecmath_trig.cos, 1),
}

# Worst errors measured by tests/backends/llvm/test_vecmath.py on an AVX2+FMA host, in ulps of the
# correctly rounded result (subnormal spacing for subnormal results). f32 inputs: a stride through
# all 2^32 bit patterns plus dense ranges; f64: log-spaced magnitudes of both signs.
ACCURACY: dict[str, str] = {
    "exp": "f32 0.98 ulp, f64 0.91 ulp; overflow to inf, gradual underflow rounded once",
    "expm1": "f32 1.85 ulp, f64 1.91 ulp",
    "log": "f32 1.50 ulp, f64 1.00 ulp; subnormal inputs included",
    "log1p": "f32 1.50 ulp, f64 1.31 ulp",
    "pow": "f32 0.5 ulp (f64 core, numpy special cases); f64 relative <= (2|y ln x| + 4) 2^-52, "
           "by multiplication for integer |y| <= 4 (exact when representable)",
    "tanh": "f32 2.48 ulp, f64 2.49 ulp",
    "sigmoid": "f32 2.20 ulp, f64 1.76 ulp (subnormal results rounded once)",
    "silu": "f32 2.87 ulp, f64 2.43 ulp",
    "gelu_tanh": "f32 2.66 ulp (2u as an fma-built f32 pair); f64 relative <= (2|2u| + 4) 2^-52",
    "erf": "f32 2.31 ulp, f64 1.00 ulp",
    "gelu": "f32 3.96 ulp, f64 3.00 ulp (relative accuracy kept deep into the negative tail)",
    "sin": "f32 1.51 ulp, f64 1.43 ulp for |x| <= 2e8; libm's f64 sin beyond (cold branch)",
    "cos": "f32 1.53 ulp, f64 1.36 ulp for |x| <= 2e8; libm's f64 cos beyond (cold branch)",
}


def _check_type(name: str, ty: ir.Type) -> None:
    elem = ty.element if isinstance(ty, ir.VectorType) else ty
    if type(elem) not in (ir.FloatType, ir.DoubleType):
        raise OpDefinitionError(
            f"math function {name!r} needs float, double or a vector of them, got {ty}",
            hint="compute f16/bf16 in f32 and convert around the call",
        )


def math_function(module: ir.Module, name: str, ty: ir.Type) -> ir.Function:
    """The function computing `name` elementwise on `ty` (one or two arguments of `ty`).

    Declared once per module (later calls return the same function); internal and alwaysinline,
    so after optimisation no call remains.
    """
    if name not in FUNCTIONS:
        raise OpDefinitionError(
            f"no vectorised math function {name!r}",
            hint=f"known: {', '.join(sorted(FUNCTIONS))}; sqrt/abs/floor/fma are LLVM intrinsics",
        )
    _check_type(name, ty)
    symbol = f"archir.math.{name}.{mangled(ty)}"
    if symbol in module.globals:
        return module.globals[symbol]
    body, arity = FUNCTIONS[name]
    function = ir.Function(module, ir.FunctionType(ty, [ty] * arity), name=symbol)
    function.linkage = "internal"
    function.attributes.add("alwaysinline")
    function.attributes.add("nounwind")
    builder = ir.IRBuilder(function.append_basic_block("entry"))
    builder.ret(body(MathBuilder(builder, ty), *function.args))
    return function
