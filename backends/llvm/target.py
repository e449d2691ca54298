"""Host CPU target for the LLVM backend: cpu name, features, vector width and TargetMachine.

Every module of the backend is created through `create_module` so triple and data layout agree.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import llvmlite
import llvmlite.binding as llvm
from llvmlite import ir


@functools.cache
def _initialise_llvm() -> None:
    # llvm.initialize() is deprecated (raises) in llvmlite 0.50: native target + asm printer suffice.
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@dataclass(frozen=True, slots=True)
class HostTarget:
    """The CPU code is generated for; part of every cache key and artifact manifest."""

    triple: str
    cpu: str
    features: str
    vector_width_f32: int

    @property
    def vector_width_f64(self) -> int:
        return self.vector_width_f32 // 2

    def target_machine(self, opt: int = 3) -> llvm.TargetMachine:
        _initialise_llvm()
        target = llvm.Target.from_triple(self.triple)
        return target.create_target_machine(
            cpu=self.cpu, features=self.features, opt=opt, reloc="pic", codemodel="default"
        )

    def data_layout(self) -> str:
        return str(self.target_machine().target_data)

    def key(self) -> str:
        """Identity of the target for cache keys: code built for one key runs only there."""
        return f"{self.triple}|{self.cpu}|{self.features}|llvmlite-{llvmlite.__version__}"


def _vector_width(features: str) -> int:
    enabled = {f[1:] for f in features.split(",") if f.startswith("+")}
    if "avx512f" in enabled:
        return 16
    if "avx" in enabled or "avx2" in enabled:
        return 8
    return 4


@functools.cache
def host_target() -> HostTarget:
    """The machine this process runs on, as llvmlite reports it."""
    _initialise_llvm()
    features = llvm.get_host_cpu_features().flatten()
    return HostTarget(
        triple=llvm.get_process_triple(),
        cpu=llvm.get_host_cpu_name(),
        features=features,
        vector_width_f32=_vector_width(features),
    )


@functools.cache
def _data_layout() -> str:
    return host_target().data_layout()


def create_module(name: str) -> ir.Module:
    """An empty llvmlite module with the host triple and data layout."""
    module = ir.Module(name=name)
    module.triple = host_target().triple
    module.data_layout = _data_layout()
    return module
