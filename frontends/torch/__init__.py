"""The torch frontend: `torch.export` programs imported as archir graphs.

    graph = archir.from_torch(model, (ids,), dynamic_shapes={"input_ids": {0: Dim("B")}})
    graph = from_export(torch.export.export(model, (x,)))
    print(coverage_report(exported_program))

ATen ops map through one table (`table.CONVERTERS`); `@converter("aten.op.overload")` adds one.
"""

# (importing the compile backend registers torch.compile(backend="archir"))
from archir.frontends.torch.compile_backend import archir_backend
from archir.frontends.torch.coverage import CoverageReport, OpUse, UnsupportedOpsError
from archir.frontends.torch.importer import coverage_report, export, from_export, from_torch
from archir.frontends.torch.table import CONVERTERS, Unsupported, converter, load_converters

load_converters()

__all__ = [
    "CONVERTERS", "CoverageReport", "OpUse", "Unsupported", "UnsupportedOpsError", "archir_backend",
    "converter",
    "coverage_report", "export", "from_export", "from_torch", "load_converters",
]
