"""The `archir` command: dump (with passes and pictures), verify, run, and the op and pass lists.

User mistakes end as one `error: ...` message on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from archir import dot, serialize
from archir.errors import ArchirError, ArgumentError
from archir.interpreter import run as interpret
from archir.ir import Graph
from archir.model_spec import load_model
from archir.pass_manager import PassManager, all_passes
from archir.printer import format_attr, print_graph
from archir.registry import REQUIRED, OpDef, all_ops
from archir.types import DType, TensorType
from archir.verifier import verify
from archir.zoo import random_inputs

Runner = Callable[[Graph, list[np.ndarray]], list[np.ndarray]]


def _run_interpreter(graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    return interpret(graph, *inputs)


# Backends `archir run` knows; a compiled backend is one more entry.
RUNNERS: dict[str, Runner] = {"interp": _run_interpreter}
DEFAULT_SIZE = 2


# -- dump -----------------------------------------------------------------------------------------
def _dump(args: argparse.Namespace) -> int:
    graph = load_model(args.model)
    print_after = {"all"} if args.print_after_all else _split_names(args.after)
    manager = PassManager(args.pipeline, print_after=print_after, out=sys.stdout)
    graph = manager.run(graph)
    if args.timings:
        print(manager.timing_report(), file=sys.stderr)
    if args.format == "text":
        _emit_text(graph, args.output)
    elif args.format == "dot" and args.output is None:
        sys.stdout.write(dot.to_dot(graph).source)
    else:
        path = Path(args.output) if args.output else Path(f"{_file_stem(graph.name)}.{args.format}")
        dot.write_picture(graph, path, args.format)
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _split_names(groups: Sequence[str] | None) -> set[str]:
    names: set[str] = set()
    for group in groups or []:
        names |= {n.strip() for n in group.split(",") if n.strip()}
    return names


def _emit_text(graph: Graph, output: str | None) -> None:
    if output is None:
        sys.stdout.write(print_graph(graph))
    else:
        serialize.save(graph, output)
        print(f"wrote {output}", file=sys.stderr)


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name) or "graph"


# -- verify ---------------------------------------------------------------------------------------
def _verify(args: argparse.Namespace) -> int:
    graph = load_model(args.model)
    verify(graph)
    count = sum(1 for _ in graph.walk())
    print(f"ok: @{graph.name} ({count} nodes)")
    return 0


# -- run ------------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    runner = RUNNERS.get(args.backend)
    if runner is None:
        raise ArchirError(f"unknown backend '{args.backend}'",
                          hint=f"available backends: {', '.join(sorted(RUNNERS))}")
    graph = load_model(args.model)
    verify(graph)
    sizes = bind_sizes(graph, parse_sizes(args.sizes))
    for v in graph.inputs:
        if not isinstance(v.type, TensorType):
            raise ArgumentError(f"input '{v.name}' has type {v.type}; `archir run` makes tensors only")
    inputs = random_inputs(graph, sizes, np.random.default_rng(args.seed))
    for i, out in enumerate(runner(graph, inputs)):
        print(describe_output(i, np.asarray(out)))
    return 0


def parse_sizes(text: str | None) -> dict[str, int]:
    """`"B=2,T=16"` -> {"B": 2, "T": 16}."""
    sizes: dict[str, int] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not name.isidentifier() or not value.isdigit() or int(value) < 1:
            raise ArgumentError(f"bad size '{item.strip()}' in --sizes",
                                hint="write --sizes B=2,T=16 (symbol=positive integer, comma-separated)")
        sizes[name] = int(value)
    return sizes


def bind_sizes(graph: Graph, given: dict[str, int]) -> dict[str, int]:
    """A size for every symbol of the inputs: the given ones, DEFAULT_SIZE for the rest."""
    symbols = graph.symbols()
    unknown = sorted(set(given) - set(symbols))
    if unknown:
        known = ", ".join(symbols) or "none"
        raise ArgumentError(f"--sizes names symbols that @{graph.name} does not have: "
                            f"{', '.join(unknown)}", hint=f"its symbols: {known}")
    return {s: given.get(s, DEFAULT_SIZE) for s in symbols}


def describe_output(index: int, array: np.ndarray) -> str:
    """One line with the dtype, shape and full-precision checksums of an output."""
    try:
        dtype = str(DType.from_numpy(array.dtype))
    except ArchirError:
        dtype = array.dtype.name
    wide = array.astype(np.float64)
    shape = ", ".join(str(d) for d in array.shape)
    return (f"output {index}: {dtype}[{shape}] sum={float(wide.sum())!r} "
            f"sum_abs={float(np.abs(wide).sum())!r}")


# -- ops and passes -------------------------------------------------------------------------------
def describe_op(op: OpDef) -> str:
    """`layer_norm(x, weight?, bias?) {begin_axis: int = -1, eps: float = 1e-05} [composite, ...]`."""
    text = f"{op.name}({', '.join(op.operands)})"
    attrs = []
    for key, spec in op.attrs.items():
        item = f"{key}: {spec.kind.value}" + ("|none" if spec.optional else "")
        if spec.default is not REQUIRED:
            item += f" = {format_attr(spec.default)}"
        attrs.append(item)
    if attrs:
        text += " {" + ", ".join(attrs) + "}"
    if op.regions:
        text += f" regions({', '.join(op.regions)})"
    traits = sorted(t.value for t in op.traits)
    if traits:
        text += f" [{', '.join(traits)}]"
    return text


def _ops(args: argparse.Namespace) -> int:
    for op in all_ops():
        print(describe_op(op))
    return 0


def _passes(args: argparse.Namespace) -> int:
    infos = all_passes()
    width = max((len(p.name) for p in infos), default=0)
    for info in infos:
        print(f"{info.name:<{width}}  {info.doc}".rstrip())
    return 0


# -- the parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archir", description="archir: a compiler for "
                                     "neural-network architectures.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_help = "model.air, or model.py:NAME (a Graph, a model, or a function returning one)"

    dump = sub.add_parser("dump", help="print a model's IR, after a pass pipeline, as text or a picture")
    dump.add_argument("model", metavar="MODEL", help=model_help)
    dump.add_argument("--pipeline", default="", help='passes to run, e.g. "canonicalize,cse"')
    after = dump.add_mutually_exclusive_group()
    after.add_argument("--print-after-all", action="store_true", help="print the IR after every pass")
    after.add_argument("--after", action="append", metavar="PASS",
                       help="print the IR after PASS (repeatable, or comma-separated)")
    dump.add_argument("--format", choices=("text", *dot.PICTURE_FORMATS), default="text")
    dump.add_argument("-o", "--output", metavar="OUT",
                      help="output file (svg/png default to <graph name>.<format>)")
    dump.add_argument("--timings", action="store_true", help="report pass times on stderr")
    dump.set_defaults(handler=_dump)

    check = sub.add_parser("verify", help="check that a graph file is well formed")
    check.add_argument("model", metavar="FILE.air", help="a graph file (or model.py:NAME)")
    check.set_defaults(handler=_verify)

    run = sub.add_parser("run", help="run a model on random inputs and print output checksums")
    run.add_argument("model", metavar="MODEL", help=model_help)
    run.add_argument("--backend", default="interp", help=f"one of: {', '.join(sorted(RUNNERS))}")
    run.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    run.add_argument("--sizes", metavar="B=2,T=16",
                     help=f"sizes of symbolic dims (default {DEFAULT_SIZE} each)")
    run.set_defaults(handler=_run)

    sub.add_parser("ops", help="list the ops").set_defaults(handler=_ops)
    sub.add_parser("passes", help="list the passes").set_defaults(handler=_passes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse's usage errors and --help
        return exit_.code if isinstance(exit_.code, int) else 1
    try:
        return args.handler(args)
    except ArchirError as err:
        print(err, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`archir ops | head`): silence the flush at exit, as `cat` would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
