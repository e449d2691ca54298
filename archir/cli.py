"""The `archir` command: dump (with passes and pictures), verify, the op, pass and backend lists;
`run`/`compile` live in cli_run.py, `zoo` in cli_zoo.py and `import-torch` in cli_torch.py.

User mistakes end as one `archir: error: ...` (or `file:line:col: error: ...`) message on stderr and
exit status 1 (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from archir import cli_run, cli_torch, cli_zoo, dot, report, serialize
from archir.backend import available_backends
from archir.errors import ArchirError
from archir.ir import Graph
from archir.model_spec import load_model
from archir.pass_manager import PassManager, all_aliases, all_passes
from archir.printer import format_attr, print_graph
from archir.registry import REQUIRED, OpDef, all_ops
from archir.verifier import verify


# -- dump -----------------------------------------------------------------------------------------
def _dump(args: argparse.Namespace) -> int:
    graph = load_model(args.model)
    if args.pipeline is None:  # what compile would run: the backend's pipeline when one is named
        from archir.backend import default_pipeline

        args.pipeline = default_pipeline(args.backend) if args.backend else "canonicalize"
    print_after = {"all"} if args.print_after_all else _split_names(args.after)
    manager = PassManager(args.pipeline, print_after=print_after, out=sys.stdout)
    before = report.copy_graph(graph) if args.report else None
    graph = manager.run(graph)
    if args.timings:
        print(manager.timing_report(), file=sys.stderr)
    if before is not None:
        sizes = report.report_sizes(before, args.model, args.sizes)
        figures = report.Report(graph.name, sizes, args.pipeline, report.graph_figures(before, sizes),
                                report.graph_figures(graph, sizes))
        sys.stdout.write(report.format_report(figures))
    elif args.emit or args.backend:
        _emit_backend_stage(graph, args)
    elif args.format == "text":
        _emit_text(graph, args.output)
    elif args.format == "dot" and args.output is None:
        sys.stdout.write(dot.to_dot(graph).source)
    else:
        path = Path(args.output) if args.output else Path(f"{_file_stem(graph.name)}.{args.format}")
        dot.write_picture(graph, path, args.format)
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _emit_backend_stage(graph: Graph, args: argparse.Namespace) -> None:
    from archir.backend import emit

    if not args.backend:
        raise ArchirError("--emit needs --backend", hint="e.g. --backend llvm --emit asm")
    text = emit(graph, args.backend, args.emit)
    if args.output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)


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
    infos, aliases = all_passes(), all_aliases()
    width = max((len(name) for name in [*(p.name for p in infos), *aliases]), default=0)
    for info in infos:
        print(f"{info.name:<{width}}  {info.doc}".rstrip())
    for name, pipeline in aliases.items():
        print(f"{name:<{width}}  = {pipeline}")
    return 0


def _backends(args: argparse.Namespace) -> int:
    for name in available_backends():
        print(name)
    return 0


# -- the parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archir", description="archir: a compiler for "
                                     "neural-network architectures.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_help = ("model.air, or model.py:NAME or pkg.module:NAME (a Graph, a model, a function "
                  "returning one, or a torch model (module, example_inputs[, dynamic_shapes]))")

    dump = sub.add_parser("dump", help="print a model's IR, after a pass pipeline, as text or a picture")
    dump.add_argument("model", metavar="MODEL", help=model_help)
    dump.add_argument("--pipeline", default=None,
                      help='passes to run (default "canonicalize", or with --backend the pipeline '
                           'that backend compiles with; "" for none), e.g. "cse,dce"')
    after = dump.add_mutually_exclusive_group()
    after.add_argument("--print-after-all", action="store_true", help="print the IR after every pass")
    after.add_argument("--after", action="append", metavar="PASS",
                       help="print the IR after PASS (repeatable, or comma-separated)")
    dump.add_argument("--format", choices=("text", *dot.PICTURE_FORMATS), default="text")
    dump.add_argument("-o", "--output", metavar="OUT",
                      help="output file (svg/png default to <graph name>.<format>)")
    dump.add_argument("--backend", metavar="B", help="show what backend B makes of the graph (with --emit)")
    dump.add_argument("--emit", metavar="STAGE",
                      help="a backend stage: llvm: loops|llvm|asm; torch: python (default: the first)")
    dump.add_argument("--timings", action="store_true", help="report pass times on stderr")
    dump.add_argument("--report", action="store_true", help="print kernels, bytes moved, arena vs naive "
                      "and fusion rules before/after the pipeline instead of the IR")
    dump.add_argument("--sizes", metavar="B=1,T=8", help="sizes of symbolic dims for --report "
                      "(default: the zoo's first sizes for an examples/ model)")
    dump.set_defaults(handler=_dump)

    check = sub.add_parser("verify", help="check that a graph file is well formed")
    check.add_argument("model", metavar="FILE.air", help="a graph file (or model.py:NAME)")
    check.set_defaults(handler=_verify)

    cli_run.add_parsers(sub, model_help)
    cli_zoo.add_parsers(sub)
    cli_torch.add_parsers(sub)
    sub.add_parser("ops", help="list the ops").set_defaults(handler=_ops)
    sub.add_parser("passes", help="list the passes and pipeline aliases").set_defaults(handler=_passes)
    sub.add_parser("backends", help="list the available backends").set_defaults(handler=_backends)
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
        # Located errors start with `file:line:col:` (as compilers write them); the rest say who speaks.
        print(err if err.loc else f"archir: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # (before OSError, its base)
        # The reader went away (`archir ops | head`): silence the flush at exit, as `cat` would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:  # unwritable output directory, unreadable file, full disk
        where = f": {err.filename}" if err.filename else ""
        print(f"archir: error: {err.strerror or err}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
