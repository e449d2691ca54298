"""The torch rendering of each op: a table from op name to a function giving a Python expression.

A renderer gets the operands' expressions (None for absent optional ones), the node's attributes
and the `Ctx` of the generated function (dims and dtypes as code, the device variable).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from archir.ir import Node
from archir.types import DType, TensorType

TORCH_DTYPES = {DType.f64: "torch.float64", DType.f32: "torch.float32", DType.f16: "torch.float16",
                DType.bf16: "torch.bfloat16", DType.i64: "torch.int64", DType.i32: "torch.int32",
                DType.i8: "torch.int8", DType.bool: "torch.bool"}


class Ctx(Protocol):
    device: str

    def dims(self, dims: Sequence[Any]) -> str: ...


Renderer = Callable[[list[Any], dict[str, Any], Node, Ctx], str]


def _out(node: Node, i: int = 0) -> TensorType:
    t = node.outputs[i].type
    assert isinstance(t, TensorType)
    return t


def _cast_operands(a: list[Any], node: Node) -> list[str]:
    """Operands converted to the result dtype where they differ (archir's promotion rules)."""
    want = _out(node).dtype
    out = []
    for expr, v in zip(a, node.inputs, strict=False):
        t = v.type
        same = isinstance(t, TensorType) and t.dtype == want
        out.append(expr if same else f"{expr}.to({TORCH_DTYPES[want]})")
    return out


def number(value: float | None) -> str:
    """A float as Python source (inf and nan are not literals)."""
    if value is None:
        return "None"
    if value != value or value in (float("inf"), float("-inf")):
        return f"float({str(value)!r})"
    return repr(value)


# Ops whose torch call returns a tuple, even for a single result.
TUPLE_RESULTS = {"split", "topk"}


def _unary(fn: str) -> Renderer:
    return lambda a, attrs, node, ctx: f"{fn}({a[0]})"


def _binary(fn: str, promote: bool = True) -> Renderer:
    def render(a: list[Any], attrs: dict[str, Any], node: Node, ctx: Ctx) -> str:
        x, y = _cast_operands(a, node) if promote else a
        return f"{fn}({x}, {y})"

    return render


def _compare(fn: str) -> Renderer:
    def render(a: list[Any], attrs: dict[str, Any], node: Node, ctx: Ctx) -> str:
        dtypes = [v.type.dtype for v in node.inputs if isinstance(v.type, TensorType)]
        if len(set(dtypes)) > 1:
            from archir.types import promote_dtypes

            common = TORCH_DTYPES[promote_dtypes(*dtypes)]
            return f"{fn}({a[0]}.to({common}), {a[1]}.to({common}))"
        return f"{fn}({a[0]}, {a[1]})"

    return render


def _bound(value: float | None, node: Node) -> str:
    """A clamp bound; on integer tensors an int, since a float bound makes torch return floats.

    Clipping an int to a bound b and truncating (archir's semantics) equals clipping to trunc(b)."""
    if not _out(node).dtype.is_int or value is None or value != value:
        return number(value)
    return "None" if value in (float("inf"), float("-inf")) else str(int(value))


def _clamp(a: list[Any], attrs: dict[str, Any], node: Node, ctx: Ctx) -> str:
    lo, hi = _bound(attrs["min"], node), _bound(attrs["max"], node)
    # torch.clamp wants at least one bound; with none (or only infinite ones on ints) it is a no-op
    return a[0] if lo == hi == "None" else f"torch.clamp({a[0]}, min={lo}, max={hi})"


def _axes(attrs: dict[str, Any], node: Node) -> str:
    rank = node.inputs[0].type.rank  # type: ignore[union-attr]
    axes = attrs["axes"] if attrs["axes"] is not None else tuple(range(rank))
    return repr(tuple(axes))


def _reduce(fn: str) -> Renderer:
    def render(a: list[Any], attrs: dict[str, Any], node: Node, ctx: Ctx) -> str:
        if node.inputs[0].type.rank == 0:  # type: ignore[union-attr]
            return a[0] if fn != "torch.sum" else f"{a[0]}.to({TORCH_DTYPES[_out(node).dtype]})"
        expr = f"{fn}({a[0]}, dim={_axes(attrs, node)}, keepdim={attrs['keepdims']})"
        return expr if fn != "torch.sum" else f"{expr}.to({TORCH_DTYPES[_out(node).dtype]})"

    return render


def _slice(a: list[Any], attrs: dict[str, Any], node: Node, ctx: Ctx) -> str:
    rank = node.inputs[0].type.rank  # type: ignore[union-attr]
    parts = [":"] * rank
    steps = attrs["steps"] or (1,) * len(attrs["axes"])
    expr = a[0]
    for axis, start, end, step in zip(attrs["axes"], attrs["starts"], attrs["ends"], steps, strict=True):
        if step < 0:  # torch slicing has no negative steps
            expr = f"rt.slice_axis({expr}, {axis % rank}, {start}, {end}, {step})"
        else:
            parts[axis % rank] = f"{start}:{end}" + (f":{step}" if step != 1 else "")
    return f"{expr}[{', '.join(parts)}]" if any(p != ":" for p in parts) else expr


def _unsqueeze(a: list[Any], attrs: dict[str, Any], node: Node, ctx: Ctx) -> str:
    rank = _out(node).rank
    expr = a[0]
    for axis in sorted(x % rank for x in attrs["axes"]):
        expr = f"{expr}.unsqueeze({axis})"
    return expr


def _attention(a: list[Any], attrs: dict[str, Any], node: Node, ctx: Ctx) -> str:
    mask = a[3] if len(a) > 3 and a[3] is not None else "None"
    return f"rt.attention({a[0]}, {a[1]}, {a[2]}, {mask}, {attrs['causal']}, {number(attrs['scale'])})"


def _opt(a: list[Any], i: int) -> str:
    return a[i] if len(a) > i and a[i] is not None else "None"


def _pool(kind: str, nd: int) -> Renderer:
    def render(a: list[Any], attrs: dict[str, Any], node: Node, ctx: Ctx) -> str:
        stride = attrs["stride"] if attrs["stride"] is not None else attrs["kernel"]
        extra = ", count_include_pad=True" if kind == "avg" else ""
        return (f"F.{kind}_pool{nd}d({a[0]}, {list(attrs['kernel'])}, {list(stride)}, "
                f"{list(attrs['padding'])}{extra})")

    return render


def _conv(nd: int) -> Renderer:
    def render(a: list[Any], attrs: dict[str, Any], node: Node, ctx: Ctx) -> str:
        return (f"F.conv{nd}d({a[0]}, {a[1]}, {_opt(a, 2)}, stride={list(attrs['stride'])}, "
                f"padding={list(attrs['padding'])}, dilation={list(attrs['dilation'])}, "
                f"groups={attrs['groups']})")

    return render


RENDERERS: dict[str, Renderer] = {
    **{name: _unary(f"torch.{name}") for name in
       ("exp", "log", "sqrt", "rsqrt", "reciprocal", "tanh", "sigmoid", "sin", "cos", "floor",
        "neg", "abs", "relu", "logical_not")},
    "erf": _unary("torch.special.erf"),
    "silu": _unary("F.silu"),
    **{name: _binary(f"torch.{fn}") for name, fn in
       (("add", "add"), ("sub", "sub"), ("mul", "mul"), ("pow", "pow"), ("maximum", "maximum"),
        ("minimum", "minimum"), ("div", "div"))},
    **{name: _compare(f"torch.{fn}") for name, fn in
       (("eq", "eq"), ("ne", "ne"), ("lt", "lt"), ("le", "le"), ("gt", "gt"), ("ge", "ge"),
        ("logical_and", "logical_and"), ("logical_or", "logical_or"))},
    "gelu": lambda a, at, n, c: f"F.gelu({a[0]}, approximate={at['approximate']!r})",
    "clamp": _clamp,
    "where": lambda a, at, n, c: "torch.where({}, {}, {})".format(a[0], *_cast_operands(a[1:], n)),
    "cast": lambda a, at, n, c: f"{a[0]}.to({TORCH_DTYPES[at['dtype']]})",
    "sum": _reduce("torch.sum"),
    "mean": _reduce("torch.mean"),
    "max": _reduce("torch.amax"),
    "min": _reduce("torch.amin"),
    "prod": lambda a, at, n, c: f"rt.prod({a[0]}, {_axes(at, n)}, {at['keepdims']})"
    + f".to({TORCH_DTYPES[_out(n).dtype]})",
    "argmax": lambda a, at, n, c: f"torch.argmax({a[0]}, dim={at['axis']}, keepdim={at['keepdims']})",
    "argmin": lambda a, at, n, c: f"torch.argmin({a[0]}, dim={at['axis']}, keepdim={at['keepdims']})",
    "softmax": lambda a, at, n, c: f"torch.softmax({a[0]}, dim={at['axis']})",
    "log_softmax": lambda a, at, n, c: f"torch.log_softmax({a[0]}, dim={at['axis']})",
    "layer_norm": lambda a, at, n, c: f"F.layer_norm({a[0]}, {a[0]}.shape[{at['begin_axis']}:], "
    f"{_opt(a, 1)}, {_opt(a, 2)}, eps={at['eps']!r})",
    "rms_norm": lambda a, at, n, c: f"F.rms_norm({a[0]}, {a[0]}.shape[{at['begin_axis']}:], "
    f"{_opt(a, 1)}, eps={at['eps']!r})",
    "batch_norm": lambda a, at, n, c: f"rt.batch_norm({a[0]}, {a[1]}, {a[2]}, {_opt(a, 3)}, "
    f"{_opt(a, 4)}, {at['axis']}, {at['eps']!r})",
    "attention": _attention,
    "matmul": _binary("torch.matmul"),
    "linear": lambda a, at, n, c: f"F.linear({a[0]}, {a[1]}, {_opt(a, 2)})",
    "conv1d": _conv(1),
    "conv2d": _conv(2),
    "max_pool1d": _pool("max", 1),
    "max_pool2d": _pool("max", 2),
    "avg_pool1d": _pool("avg", 1),
    "avg_pool2d": _pool("avg", 2),
    "reshape": lambda a, at, n, c: f"torch.reshape({a[0]}, {c.dims(at['shape'])})",
    "transpose": lambda a, at, n, c: f"{a[0]}.permute({tuple(at['perm'])})",
    "expand": lambda a, at, n, c: f"{a[0]}.expand({c.dims(at['shape'])})",
    "squeeze": lambda a, at, n, c: f"torch.squeeze({a[0]}, dim={tuple(at['axes'])})",
    "unsqueeze": _unsqueeze,
    "concat": lambda a, at, n, c: f"torch.cat([{', '.join(a)}], dim={at['axis']})",
    "split": lambda a, at, n, c: f"rt.split({a[0]}, {list(at['sizes'])}, {at['axis']})",
    "slice": _slice,
    "pad": lambda a, at, n, c: f"rt.pad({a[0]}, {list(at['pads'])}, {number(at['value'])})",
    "full": lambda a, at, n, c: f"torch.full({c.dims(at['shape'])}, {number(at['value'])}, "
    f"dtype={TORCH_DTYPES[at['dtype']]}, device={c.device})",
    "iota": lambda a, at, n, c: f"rt.iota({c.dims(at['shape'])}, {at['axis']}, "
    f"{TORCH_DTYPES[at['dtype']]}, {c.device})",
    "triu": lambda a, at, n, c: f"torch.triu({a[0]}, {at['diagonal']})",
    "tril": lambda a, at, n, c: f"torch.tril({a[0]}, {at['diagonal']})",
    "embedding": lambda a, at, n, c: f"F.embedding({a[0]}, {a[1]})",
    "gather": lambda a, at, n, c: f"torch.gather({a[0]}, {at['axis']}, {a[1]})",
    "index_select": lambda a, at, n, c: f"torch.index_select({a[0]}, {at['axis']}, {a[1]})",
    "scatter_add": lambda a, at, n, c: f"torch.scatter_add({a[0]}, {at['axis']}, {a[1]}, {a[2]})",
    "topk": lambda a, at, n, c: f"tuple(torch.topk({a[0]}, {at['k']}, dim={at['axis']}, "
    f"largest={at['largest']}, sorted=True))"  # archir's topk is always sorted,
}
