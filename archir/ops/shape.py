"""Shape and layout ops: reshape, transpose, expand, (un)squeeze, concat, split, slice, pad,
the sources full and iota, and triu/tril. Inference works on symbolic dims; impls get the
DIMS attributes already evaluated to ints by the interpreter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from archir.errors import TypeInferenceError
from archir.ops.rules import axes_of, tensor
from archir.registry import AttrKind, Trait, attr, define_op
from archir.symbolic import Dim, SymExpr, add, exact_div, floordiv, product, sub
from archir.types import DType, TensorType, Type, normalize_axis

LAYOUT = (Trait.LAYOUT,)
SOURCE = (Trait.SOURCE,)
# An end at or past this means "to the end" on a symbolic dim (exporters write INT64_MAX or INT32_MAX).
OPEN_END = 2**31 - 1


def _shape_text(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _axis(xt: TensorType, axis: int) -> int:
    """`axis` of x normalised; rank-0 tensors have no axis to name."""
    if xt.rank == 0:
        raise TypeInferenceError(f"x must have rank >= 1 to take axis {axis}, got {xt}")
    return normalize_axis(axis, xt.rank)


def _check_sizes(shape: Sequence[Dim], what: str) -> None:
    for d in shape:
        if isinstance(d, int) and d < 0:
            raise TypeInferenceError(f"{what} {_shape_text(shape)} has a negative size")


# -- transpose ----------------------------------------------------------------------------------
def _infer_transpose(x: Type, *, perm: tuple[int, ...]) -> TensorType:
    xt = tensor(x, "x")
    norm = [p % xt.rank for p in perm if -xt.rank <= p < xt.rank]
    if len(perm) != xt.rank or sorted(norm) != list(range(xt.rank)):
        raise TypeInferenceError(f"transpose perm {list(perm)} is not a permutation of the "
                                 f"{xt.rank} axes of x: {xt}")
    return xt.with_shape(xt.shape[p] for p in norm)


define_op("transpose", operands=("x",), infer=_infer_transpose,
          impl=lambda x, perm: np.transpose(x, perm),
          attrs={"perm": attr(AttrKind.INTS, doc="result axis i is input axis perm[i]")},
          traits=LAYOUT, doc="permute the axes (torch.permute)")


# -- full and iota ------------------------------------------------------------------------------
def _check_fill(value: float, dtype: DType) -> None:
    # A fill an integer or bool tensor cannot hold exactly is a mistake, not something to round.
    if dtype.is_float:
        return
    if not np.isfinite(value) or value != int(value) or (dtype == DType.bool and value not in (0, 1)):
        raise TypeInferenceError(f"value {value} cannot be stored exactly in dtype {dtype}")


def _infer_full(*, shape: tuple[Dim, ...], value: float, dtype: DType) -> TensorType:
    _check_sizes(shape, "full shape")
    _check_fill(value, dtype)
    return TensorType(shape, dtype)


define_op("full", operands=(), infer=_infer_full,
          impl=lambda shape, value, dtype: np.full(shape, value, dtype.numpy),
          attrs={"shape": attr(AttrKind.DIMS), "value": attr(AttrKind.FLOAT),
                 "dtype": attr(AttrKind.DTYPE, DType.f32)},
          traits=SOURCE, doc="a tensor of `shape` filled with `value`")


def _infer_iota(*, shape: tuple[Dim, ...], axis: int, dtype: DType) -> TensorType:
    _check_sizes(shape, "iota shape")
    if not shape:
        raise TypeInferenceError("iota needs a shape of rank >= 1")
    normalize_axis(axis, len(shape))
    if dtype == DType.bool:
        raise TypeInferenceError("iota needs a numeric dtype, got bool")
    return TensorType(shape, dtype)


def _iota(*, shape: tuple[int, ...], axis: int, dtype: DType) -> np.ndarray:
    ax = normalize_axis(axis, len(shape))
    ramp_shape = [1] * len(shape)
    ramp_shape[ax] = shape[ax]
    ramp = np.arange(shape[ax], dtype=np.int64).reshape(ramp_shape)
    return np.broadcast_to(ramp, shape).astype(dtype.numpy)


define_op("iota", operands=(), infer=_infer_iota, impl=_iota,
          attrs={"shape": attr(AttrKind.DIMS), "axis": attr(AttrKind.INT, 0),
                 "dtype": attr(AttrKind.DTYPE, DType.i64)},
          traits=SOURCE, doc="the index along `axis` (0, 1, 2, ...), broadcast over the other axes")


# -- reshape ------------------------------------------------------------------------------------
def _infer_reshape(x: Type, *, shape: tuple[Dim, ...]) -> TensorType:
    xt = tensor(x, "x")
    holes = [i for i, d in enumerate(shape) if isinstance(d, int) and d == -1]
    if len(holes) > 1:
        raise TypeInferenceError(f"reshape target {_shape_text(shape)} has more than one -1")
    known = [d for i, d in enumerate(shape) if i not in holes]
    _check_sizes(known, "reshape target")
    numel, known_numel = xt.numel(), product(known)
    if not holes:
        if numel != known_numel:
            raise _numel_mismatch(xt, shape, numel, known_numel)
        return xt.with_shape(shape)
    if known_numel == 0:
        raise TypeInferenceError(f"reshape target {_shape_text(shape)} has a 0 size, so its -1 "
                                 "could be any size")
    rest = _hole_size(list(xt.shape), known)
    if rest is None or (isinstance(rest, int) and rest < 0):
        raise _numel_mismatch(xt, shape, numel, known_numel)
    return xt.with_shape(rest if i == holes[0] else d for i, d in enumerate(shape))


def _hole_size(have: list[Dim], known: list[Dim]) -> Dim | None:
    """numel(have) / numel(known), or None when it is not exact.

    Dims found on both sides cancel first, so `[T + 1, 4] -> [T + 1, -1]` works even though
    `exact_div` only divides by a single monomial.
    """
    unmatched: list[Dim] = []
    for d in known:
        if d in have:
            have.remove(d)
        else:
            unmatched.append(d)
    return exact_div(product(have), product(unmatched))


def _numel_mismatch(xt: TensorType, shape: tuple[Dim, ...], numel: Dim, known: Dim) -> TypeInferenceError:
    symbolic = isinstance(numel, SymExpr) or isinstance(known, SymExpr)
    return TypeInferenceError(
        f"cannot reshape x: {xt} ({numel} elements) to {_shape_text(shape)} ({known} elements"
        f"{' besides the -1' if -1 in shape else ''})",
        hint="write the target so its size is provably the same, e.g. with the same symbols"
        if symbolic else None)


define_op("reshape", operands=("x",), infer=_infer_reshape,
          impl=lambda x, shape: np.reshape(x, shape),
          attrs={"shape": attr(AttrKind.DIMS, doc="target shape; one -1 is inferred")},
          traits=LAYOUT, doc="same elements in row-major order, new shape (torch.reshape)")


# -- expand, squeeze, unsqueeze -----------------------------------------------------------------
def _expanded_dim(have: Dim, want: Dim, axis: int, xt: TensorType) -> Dim:
    if isinstance(want, int) and want == -1:
        return have
    if have == want or have == 1:
        return want
    raise TypeInferenceError(f"cannot expand axis {axis} of x: {xt} from size {have} to {want}",
                             hint="only size-1 axes can grow; -1 keeps an axis as it is")


def _infer_expand(x: Type, *, shape: tuple[Dim, ...]) -> TensorType:
    xt = tensor(x, "x")
    new = len(shape) - xt.rank
    if new < 0:
        raise TypeInferenceError(f"expand target {_shape_text(shape)} has fewer axes than x: {xt}")
    _check_sizes(shape[:new], "expand target (new leading axes may not be -1)")
    _check_sizes([d for d in shape[new:] if d != -1], "expand target")
    kept = [_expanded_dim(h, w, i, xt) for i, (h, w) in enumerate(zip(xt.shape, shape[new:], strict=True))]
    return xt.with_shape([*shape[:new], *kept])


def _expand(x: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
    new = len(shape) - x.ndim
    target = [w if i < new or w != -1 else x.shape[i - new] for i, w in enumerate(shape)]
    return np.broadcast_to(x, target).copy()


define_op("expand", operands=("x",), infer=_infer_expand, impl=_expand,
          attrs={"shape": attr(AttrKind.DIMS, doc="target shape; -1 keeps an axis")},
          traits=LAYOUT, doc="broadcast size-1 axes and add leading axes (torch.expand)")


def _infer_squeeze(x: Type, *, axes: tuple[int, ...]) -> TensorType:
    xt = tensor(x, "x")
    norm = axes_of(axes, xt.rank) if axes else ()
    for a in norm:
        _axis(xt, a)
        if xt.shape[a] != 1:
            raise TypeInferenceError(f"squeeze axis {a} of x: {xt} has size {xt.shape[a]}, not 1")
    return xt.with_shape(d for i, d in enumerate(xt.shape) if i not in norm)


define_op("squeeze", operands=("x",), infer=_infer_squeeze,
          impl=lambda x, axes: np.squeeze(x, tuple(axes)),
          attrs={"axes": attr(AttrKind.INTS, doc="axes of size 1 to remove")},
          traits=LAYOUT, doc="remove the given size-1 axes")


def _infer_unsqueeze(x: Type, *, axes: tuple[int, ...]) -> TensorType:
    xt = tensor(x, "x")
    norm = axes_of(axes, xt.rank + len(axes))
    rest = iter(xt.shape)
    return xt.with_shape(1 if i in norm else next(rest) for i in range(xt.rank + len(axes)))


define_op("unsqueeze", operands=("x",), infer=_infer_unsqueeze,
          impl=lambda x, axes: np.expand_dims(x, tuple(axes)),
          attrs={"axes": attr(AttrKind.INTS, doc="positions of the new axes in the result")},
          traits=LAYOUT, doc="insert size-1 axes")


# -- concat and split ---------------------------------------------------------------------------
def _infer_concat(*xs: Type, axis: int) -> TensorType:
    if not xs:
        raise TypeInferenceError("concat needs at least one operand")
    first = tensor(xs[0], "concat operand 0")
    ax = _axis(first, axis)
    total: Dim = 0
    for i, t in enumerate(xs):
        tt = tensor(t, f"concat operand {i}")
        if tt.dtype != first.dtype or tt.rank != first.rank:
            raise TypeInferenceError(f"concat operand {i}: {tt} does not match operand 0: {first} "
                                     "in dtype or rank")
        for a, (d, d0) in enumerate(zip(tt.shape, first.shape, strict=True)):
            if a != ax and d != d0:
                raise TypeInferenceError(f"concat operand {i}: {tt} differs from operand 0: {first} "
                                         f"on axis {a} ({d} != {d0}); only axis {ax} may differ")
        total = add(total, tt.shape[ax])
    return first.with_shape(total if a == ax else d for a, d in enumerate(first.shape))


define_op("concat", operands=("*xs",), infer=_infer_concat,
          impl=lambda *xs, axis: np.concatenate(xs, axis=axis),
          attrs={"axis": attr(AttrKind.INT)},
          traits=LAYOUT, doc="join tensors along `axis` (torch.cat)")


def _split_sizes(dim: Dim, sizes: Sequence[int], xt: TensorType, axis: int) -> list[Dim]:
    """Sizes with a -1 replaced by the rest of `dim`; checks that they add up."""
    holes = [i for i, s in enumerate(sizes) if s == -1]
    if not sizes or len(holes) > 1 or any(s < -1 for s in sizes):
        raise TypeInferenceError(f"split sizes {list(sizes)} must be non-negative, with at most one -1")
    fixed = sum(s for s in sizes if s != -1)
    if not holes:
        if dim != fixed:
            raise TypeInferenceError(
                f"split sizes {list(sizes)} add up to {fixed}, but axis {axis} of x: {xt} is {dim}",
                hint="use -1 for one size to take the rest" if isinstance(dim, SymExpr) else None)
        return list(sizes)
    rest = sub(dim, fixed)
    if isinstance(rest, int) and rest < 0:
        raise TypeInferenceError(f"split sizes {list(sizes)} exceed axis {axis} of x: {xt}")
    return [rest if s == -1 else s for s in sizes]


def _infer_split(x: Type, *, axis: int, sizes: tuple[int, ...]) -> list[TensorType]:
    xt = tensor(x, "x")
    ax = _axis(xt, axis)
    pieces = _split_sizes(xt.shape[ax], sizes, xt, axis)
    return [xt.with_shape(p if a == ax else d for a, d in enumerate(xt.shape)) for p in pieces]


def _split(x: np.ndarray, *, axis: int, sizes: tuple[int, ...]) -> list[np.ndarray]:
    fixed = sum(s for s in sizes if s != -1)
    lengths = [x.shape[axis] - fixed if s == -1 else s for s in sizes]
    cuts = np.cumsum(lengths)[:-1]
    return np.split(x, cuts, axis=axis)


define_op("split", operands=("x",), infer=_infer_split, impl=_split,
          attrs={"axis": attr(AttrKind.INT),
                 "sizes": attr(AttrKind.INTS, doc="piece lengths; one -1 takes the rest")},
          traits=LAYOUT, doc="cut x along `axis` into pieces of the given sizes, one result each")


# -- slice --------------------------------------------------------------------------------------
def _slice_length(dim: Dim, start: int, end: int, step: int) -> Dim:
    if step == 0:
        raise TypeInferenceError("slice step must not be 0")
    if isinstance(dim, int):
        return len(range(*slice(start, end, step).indices(dim)))
    # On a symbolic dim, assume the indices lie inside it (the interpreter checks at run time).
    if step < 0:
        raise TypeInferenceError(f"slice with negative step {step} on symbolic dim {dim}",
                                 hint="reverse with a static size, or slice a static axis")
    if start < 0 <= end < OPEN_END:
        raise TypeInferenceError(
            f"slice [{start}:{end}] of symbolic dim {dim} has a size that depends on {dim} "
            "in a way archir cannot express", hint="use a non-negative start or a negative end")
    begin = start if start >= 0 else add(dim, start)
    stop = dim if end >= OPEN_END else end if end >= 0 else add(dim, end)
    span = sub(stop, begin)
    if isinstance(span, int):
        return max(0, -(-span // step))
    return floordiv(add(span, step - 1), step)


def _infer_slice(x: Type, *, axes: tuple[int, ...], starts: tuple[int, ...], ends: tuple[int, ...],
                 steps: tuple[int, ...] | None) -> TensorType:
    xt = tensor(x, "x")
    steps = steps if steps is not None else (1,) * len(axes)
    if not len(axes) == len(starts) == len(ends) == len(steps):
        raise TypeInferenceError(f"slice axes, starts, ends and steps must have the same length, got "
                                 f"{len(axes)}, {len(starts)}, {len(ends)} and {len(steps)}")
    norm = [_axis(xt, a) for a in axes]
    if len(set(norm)) != len(norm):
        raise TypeInferenceError(f"slice axes {list(axes)} repeat an axis")
    shape = list(xt.shape)
    for a, s, e, k in zip(norm, starts, ends, steps, strict=True):
        shape[a] = _slice_length(shape[a], s, e, k)
    return xt.with_shape(shape)


def _slice(x: np.ndarray, *, axes: tuple[int, ...], starts: tuple[int, ...], ends: tuple[int, ...],
           steps: tuple[int, ...] | None) -> np.ndarray:
    index = [slice(None)] * x.ndim
    for i, a in enumerate(axes):
        index[a] = slice(starts[i], ends[i], steps[i] if steps is not None else 1)
    return x[tuple(index)]


define_op("slice", operands=("x",), infer=_infer_slice, impl=_slice,
          attrs={"axes": attr(AttrKind.INTS), "starts": attr(AttrKind.INTS),
                 "ends": attr(AttrKind.INTS, doc="exclusive; huge values mean to the end"),
                 "steps": attr(AttrKind.INTS, optional=True, doc="default 1 on every axis")},
          traits=LAYOUT,
          doc="x[start:end:step] on each listed axis, with Python semantics. On a symbolic dim "
              "the indices are assumed to lie inside it; an end >= 2**31 - 1 means to the end.")


# -- pad ----------------------------------------------------------------------------------------
def _infer_pad(x: Type, *, pads: tuple[int, ...], value: float) -> TensorType:
    xt = tensor(x, "x")
    if len(pads) != 2 * xt.rank:
        raise TypeInferenceError(f"pad needs {2 * xt.rank} pads (before, after per axis) for x: {xt}, "
                                 f"got {len(pads)}")
    _check_fill(value, xt.dtype)
    shape = [add(add(d, pads[2 * i]), pads[2 * i + 1]) for i, d in enumerate(xt.shape)]
    _check_sizes(shape, "padded shape")
    return xt.with_shape(shape)


def _pad(x: np.ndarray, *, pads: tuple[int, ...], value: float) -> np.ndarray:
    # Negative pads crop (as in torch.nn.functional.pad); crop first, then pad the rest.
    crop = tuple(slice(max(0, -pads[2 * i]), x.shape[i] - max(0, -pads[2 * i + 1]))
                 for i in range(x.ndim))
    widths = [(max(0, pads[2 * i]), max(0, pads[2 * i + 1])) for i in range(x.ndim)]
    return np.pad(x[crop], widths, constant_values=np.asarray(value).astype(x.dtype))


define_op("pad", operands=("x",), infer=_infer_pad, impl=_pad,
          attrs={"pads": attr(AttrKind.INTS, doc="before0, after0, before1, after1, ..."),
                 "value": attr(AttrKind.FLOAT, 0.0)},
          traits=LAYOUT, doc="pad every axis with a constant; negative pads crop")


# -- triu and tril ------------------------------------------------------------------------------
def _infer_triangle(x: Type, *, diagonal: int) -> TensorType:
    xt = tensor(x, "x")
    if xt.rank < 2:
        raise TypeInferenceError(f"x must have rank >= 2 (a matrix or a stack of them), got {xt}")
    return xt


define_op("triu", operands=("x",), infer=_infer_triangle,
          impl=lambda x, diagonal: np.triu(x, diagonal),
          attrs={"diagonal": attr(AttrKind.INT, 0)}, traits=LAYOUT,
          doc="zero the elements below the `diagonal`-th diagonal of the last two axes")

define_op("tril", operands=("x",), infer=_infer_triangle,
          impl=lambda x, diagonal: np.tril(x, diagonal),
          attrs={"diagonal": attr(AttrKind.INT, 0)}, traits=LAYOUT,
          doc="zero the elements above the `diagonal`-th diagonal of the last two axes")
