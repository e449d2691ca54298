"""The fused group: `fused(inputs...)` with a `body` region of primitive ops run as one kernel.

The body is closed: its arguments are the group's inputs, its nodes read only those arguments and
each other, and it yields the group's results. Fusion passes (archir.passes.fuse_*) make groups;
the interpreter runs the body, backends lower it as one kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from archir.errors import TypeInferenceError
from archir.ir import Region, Value
from archir.registry import AttrKind, attr, define_op
from archir.types import Type

# What a group computes, so a backend can pick a kernel template; the body says exactly what.
FUSED_KINDS = ("elementwise", "reduction", "gemm_epilogue", "attention", "layout")

RegionCall = Callable[..., list[np.ndarray]]


def _region_args(*inputs: Type, **_: object) -> list[list[Type]]:
    return [list(inputs)]


def _check_closed(body: Region) -> None:
    """The body reads only its arguments and its own results, and holds no regions."""
    seen: set[Value] = set(body.args)
    for node in body.nodes:
        if node.regions:
            raise TypeInferenceError(f"fused body holds {node.op}, which has regions",
                                     hint="a fused group holds primitive ops only")
        for v in node.inputs:
            if v not in seen:
                raise TypeInferenceError(
                    f"fused body reads %{v.name or '?'} ({v.type}) from outside the group",
                    hint="pass every value the body reads as an input of the group")
        seen.update(node.outputs)
    for v in body.results:
        if v not in seen:
            raise TypeInferenceError(f"fused body yields %{v.name or '?'}, which it does not define")


def _infer(*inputs: Type, kind: str, rules: str, flash: bool, key_tile: int | None,
           regions: Sequence[Region]) -> list[Type]:
    body = regions[0]
    _check_closed(body)
    if not body.results:
        raise TypeInferenceError("fused body yields nothing; a group must produce a value")
    if flash and kind != "attention":
        raise TypeInferenceError(f"flash = true needs kind = \"attention\", not \"{kind}\"")
    return [v.type for v in body.results]


def _impl(*arrays: np.ndarray, kind: str, rules: str, flash: bool, key_tile: int | None,
          regions: Sequence[RegionCall]) -> list[np.ndarray]:
    return regions[0](*arrays)


define_op(
    "fused", operands=("*inputs",), infer=_infer, impl=_impl,
    attrs={"kind": attr(AttrKind.STR, choices=FUSED_KINDS,
                        doc="what the group computes: the kernel template a backend may use"),
           "rules": attr(AttrKind.STR, doc="the fusion rules that made the group, comma-separated"),
           "flash": attr(AttrKind.BOOL, False,
                         doc="attention only: run as one flash kernel (key tiles, online softmax); "
                             "only the output leaves the group, so no score matrix is stored"),
           "key_tile": attr(AttrKind.INT, optional=True,
                            doc="keys per tile of a flash kernel; none leaves it to the backend")},
    regions=("body",), region_args=_region_args,
    doc="A fused group: the body (arguments = the inputs) runs as one kernel and yields the "
        "results. The body is closed (reads only its arguments) and holds no regions.",
)
