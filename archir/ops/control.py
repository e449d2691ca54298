"""Control flow ops with regions: `scan` (RNNs, SSMs, decode loops), `cond` and `while`.

Regions read values of enclosing scopes directly. The interpreter passes each region to `impl`
as a callable from arrays to the list of arrays it yields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from archir.errors import TypeInferenceError
from archir.ir import Region
from archir.ops.rules import tensor
from archir.registry import AttrKind, Trait, attr, define_op
from archir.types import DType, TensorType, Type, normalize_axis

RegionCall = Callable[..., list[np.ndarray]]


def _check_yields(region: Region, expected: Sequence[Type], what: str) -> None:
    got = [v.type for v in region.results]
    if len(got) != len(expected) or any(g != e for g, e in zip(got, expected, strict=False)):
        raise TypeInferenceError(
            f"{what} region yields ({', '.join(map(str, got))}) "
            f"but must yield ({', '.join(map(str, expected))})"
        )


# -- scan -------------------------------------------------------------------------------------
def _scan_split(types: Sequence[Type], num_carry: int) -> tuple[list[Type], list[TensorType]]:
    if not 0 <= num_carry <= len(types):
        raise TypeInferenceError(f"scan has {len(types)} operands but num_carry = {num_carry}")
    seqs = [tensor(t, "scanned operand") for t in types[num_carry:]]
    if not seqs:
        raise TypeInferenceError("scan needs at least one scanned sequence operand")
    return list(types[:num_carry]), seqs


def _scan_length(seqs: Sequence[TensorType], axis: int) -> tuple[int, object]:
    ax = normalize_axis(axis, seqs[0].rank)
    length = seqs[0].shape[ax]
    for s in seqs:
        if s.rank <= ax or s.shape[ax] != length:
            raise TypeInferenceError(f"scanned operands disagree on the length of axis {axis}")
    return ax, length


def _scan_region_args(*types: Type, num_carry: int, axis: int, reverse: bool) -> list[list[Type]]:
    carries, seqs = _scan_split(types, num_carry)
    ax, _ = _scan_length(seqs, axis)
    slices: list[Type] = [s.with_shape(s.shape[:ax] + s.shape[ax + 1:]) for s in seqs]
    return [carries + slices]


def _scan_infer(*types: Type, num_carry: int, axis: int, reverse: bool,
                regions: Sequence[Region]) -> list[Type]:
    carries, seqs = _scan_split(types, num_carry)
    ax, length = _scan_length(seqs, axis)
    body = regions[0]
    if len(body.results) < num_carry:
        raise TypeInferenceError(f"scan body yields {len(body.results)} values, fewer than its "
                                 f"{num_carry} carries")
    _check_yields(Region(body.args, [], body.results[:num_carry]), carries, "scan body (carries)")
    stacked: list[Type] = []
    for v in body.results[num_carry:]:
        t = tensor(v.type, "scan per-step output")
        if t.rank < ax:
            raise TypeInferenceError(f"scan per-step output {t} has rank below axis {ax}")
        stacked.append(t.with_shape((*t.shape[:ax], length, *t.shape[ax:])))
    return carries + stacked


def _scan_impl(*arrays: np.ndarray, num_carry: int, axis: int, reverse: bool,
               regions: Sequence[RegionCall]) -> list[np.ndarray]:
    carries = list(arrays[:num_carry])
    seqs = arrays[num_carry:]
    ax = normalize_axis(axis, seqs[0].ndim)
    steps = range(seqs[0].shape[ax])
    outputs: list[list[np.ndarray]] = []
    for t in reversed(steps) if reverse else steps:
        results = regions[0](*carries, *(np.take(s, t, axis=ax) for s in seqs))
        carries = list(results[:num_carry])
        outputs.append(list(results[num_carry:]))
    if reverse:
        outputs.reverse()
    if not outputs:  # no steps: empty per-step outputs of the shapes the body declares
        return carries + [_no_steps(t, ax) for t in regions[0].result_shapes()[num_carry:]]  # type: ignore[attr-defined]
    stacked = [np.stack([step[i] for step in outputs], axis=ax) for i in range(len(outputs[0]))]
    return carries + stacked


def _no_steps(shape_and_dtype: tuple[tuple[int, ...], np.dtype], ax: int) -> np.ndarray:
    shape, dtype = shape_and_dtype
    return np.zeros((*shape[:ax], 0, *shape[ax:]), dtype)


define_op(
    "scan", operands=("*operands",), infer=_scan_infer, impl=_scan_impl,
    attrs={"num_carry": attr(AttrKind.INT, doc="how many leading operands are carries"),
           "axis": attr(AttrKind.INT, 0, doc="the axis the sequences are sliced along"),
           "reverse": attr(AttrKind.BOOL, False, doc="walk the sequence from its end")},
    traits=(Trait.CONTROL,), regions=("body",), region_args=_scan_region_args,
    doc="Loop over slices of the sequence operands with carried state. The body takes "
        "(carries..., slices...) and yields (new carries..., per-step outputs...); results are "
        "the final carries, then the per-step outputs stacked along `axis`.",
)


# -- cond -------------------------------------------------------------------------------------
def _pred(t: Type) -> None:
    p = tensor(t, "cond predicate")
    if p.dtype != DType.bool or p.rank != 0:
        raise TypeInferenceError(f"cond predicate must be bool[], got {p}")


def _cond_region_args(pred: Type, *args: Type) -> list[list[Type]]:
    return [list(args), list(args)]


def _cond_infer(pred: Type, *args: Type, regions: Sequence[Region]) -> list[Type]:
    _pred(pred)
    then_types = [v.type for v in regions[0].results]
    _check_yields(regions[1], then_types, "cond else")
    return then_types


def _cond_impl(pred: np.ndarray, *args: np.ndarray,
               regions: Sequence[RegionCall]) -> list[np.ndarray]:
    return regions[0](*args) if bool(pred) else regions[1](*args)


define_op(
    "cond", operands=("pred", "*args"), infer=_cond_infer, impl=_cond_impl,
    traits=(Trait.CONTROL,), regions=("then", "else"), region_args=_cond_region_args,
    doc="Run the `then` region on args when pred (a bool scalar) holds, else the `else` region; "
        "both yield the same types.",
)


# -- while ------------------------------------------------------------------------------------
def _while_region_args(*carries: Type) -> list[list[Type]]:
    return [list(carries), list(carries)]


def _while_infer(*carries: Type, regions: Sequence[Region]) -> list[Type]:
    if not carries:
        raise TypeInferenceError("while needs at least one carried value")
    _check_yields(regions[0], [TensorType((), DType.bool)], "while cond")
    _check_yields(regions[1], list(carries), "while body")
    return list(carries)


def _while_impl(*carries: np.ndarray, regions: Sequence[RegionCall]) -> list[np.ndarray]:
    state = list(carries)
    while bool(regions[0](*state)[0]):
        state = list(regions[1](*state))
    return state


define_op(
    "while", operands=("*carries",), infer=_while_infer, impl=_while_impl,
    traits=(Trait.CONTROL,), regions=("cond", "body"), region_args=_while_region_args,
    doc="Loop with a dynamic trip count: while `cond` (carries -> bool[]) yields true, replace "
        "the carries by what `body` yields. Results are the final carries.",
)
