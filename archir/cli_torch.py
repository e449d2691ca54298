"""`archir import-torch MODEL`: a torch model (`pkg.module:factory` returning (module, example_inputs[,
dynamic_shapes])) exported and imported; `--report` prints which ATen ops archir maps instead.

torch and the torch frontend are imported only when this command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from archir import serialize
from archir.model_spec import load_model, load_torch_model
from archir.printer import print_graph

SPEC_HELP = "a torch model: pkg.module:NAME or model.py:NAME, NAME returning " \
            "(module, example_inputs[, dynamic_shapes])"


def coverage_text(spec: str) -> str:
    """The coverage report of the torch model `spec` names, as printed."""
    frontend = importlib.import_module("archir.frontends.torch")
    importer = importlib.import_module("archir.frontends.torch.importer")
    module, inputs, dynamic_shapes = load_torch_model(spec)
    program = importer.export(module, inputs, {}, dynamic_shapes)
    return str(frontend.coverage_report(program, type(module).__name__))


def _import_torch(args: argparse.Namespace) -> int:
    if args.report:
        print(coverage_text(args.model))
        return 0
    graph = load_model(args.model)
    if args.output is None:
        sys.stdout.write(print_graph(graph))
    else:
        serialize.save(graph, args.output)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def add_parsers(sub: Any) -> None:
    cmd = sub.add_parser("import-torch", help="import a torch model (torch.export), or report which "
                         "ATen ops archir maps")
    cmd.add_argument("model", metavar="MODULE_SPEC", help=SPEC_HELP)
    cmd.add_argument("--report", action="store_true",
                     help="print every ATen op of the model: native, decomposed or unsupported, "
                          "with counts and module paths")
    cmd.add_argument("-o", "--output", metavar="OUT.air", help="write the graph (and weights) here")
    cmd.set_defaults(handler=_import_torch)
