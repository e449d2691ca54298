"""The verifier: checks the rules every graph must keep, after construction and after passes.

Rules: SSA (every value defined once, before its uses, and only used in its scope); ops known;
operand counts; attributes valid; declared result types equal to inference, at least one per
node; regions of the right number with argument types the op expects; graph outputs defined;
parameter data that matches its declared type. Errors carry the node's source location.
"""

from __future__ import annotations

from archir.builder import check_param_data, infer_types
from archir.errors import ArchirError, VerifyError
from archir.ir import Graph, Node, Region, Value
from archir.registry import attr_equal, get_op
from archir.types import TensorType


def verify(graph: Graph) -> None:
    """Raise `VerifyError` at the first broken rule; return None when the graph is well formed."""
    _Verifier(graph).run()


def _name(v: Value) -> str:
    if v.name:
        return f"%{v.name}"
    article = "an" if v.kind == "input" else "a"
    return f"{article} {v.kind} value of type {v.type}"


class _Verifier:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.defined: set[Value] = set()  # every value ever defined (to catch redefinition)
        self.scopes: list[set[Value]] = [set()]

    def fail(self, message: str, node: Node | None = None) -> VerifyError:
        if node is None:
            return VerifyError(message, loc=self.graph.loc)
        return VerifyError(message, loc=node.loc, node=node.describe())

    def define(self, v: Value, node: Node | None = None) -> None:
        if v in self.defined:
            raise self.fail(f"{_name(v)} is defined more than once", node)
        self.defined.add(v)
        self.scopes[-1].add(v)

    def visible(self, v: Value) -> bool:
        return any(v in scope for scope in self.scopes)

    def run(self) -> None:
        g = self.graph
        for v in g.inputs:
            self.define(v)
        for p in g.params:
            self.define(p)
            self._check_param(p)
        self._nodes(g.nodes)
        if not g.outputs:
            raise self.fail(f"graph @{g.name} has no outputs")
        for v in g.outputs:
            if not self.visible(v):
                raise self.fail(f"graph output {_name(v)} is not defined in the graph body")

    def _check_param(self, p: Value) -> None:
        if p.kind != "param" or p.name is None:
            raise self.fail(f"parameter {_name(p)} must be a named param value")
        data = self.graph.param_data.get(p.name)
        if data is not None:
            if not isinstance(p.type, TensorType):
                raise self.fail(f"parameter %{p.name} must have a tensor type")
            try:
                check_param_data(p.name, p.type, data)
            except ArchirError as err:
                raise self.fail(err.message) from None

    def _nodes(self, nodes: list[Node]) -> None:
        for node in nodes:
            self._node(node)

    def _node(self, node: Node) -> None:
        for i, v in enumerate(node.inputs):
            if not self.visible(v):
                where = "is used before it is defined" if v.kind != "region_arg" and \
                    v not in self.defined else "is used outside the scope that defines it"
                raise self.fail(f"operand {i} ({_name(v)}) of {node.op} {where}", node)
        try:
            op = get_op(node.op)
        except ArchirError as err:
            raise self.fail(err.message, node) from None
        self._check_attrs(node)
        try:
            op.check_operand_count(len(node.inputs))
        except ArchirError as err:
            raise self.fail(err.message, node) from None
        if len(node.regions) != len(op.regions):
            raise self.fail(f"{node.op} must have {len(op.regions)} regions "
                            f"({', '.join(op.regions) or 'none'}), has {len(node.regions)}", node)
        for i, region in enumerate(node.regions):
            self._region(node, region, i)
        self._check_types(node)
        if not node.outputs:
            # The text format has no spelling for a statement without results.
            raise self.fail(f"{node.op} has no results; every node must produce a value", node)
        for i, v in enumerate(node.outputs):
            if v.producer is not node or v.index != i or v.kind != "result":
                raise self.fail(f"result {i} of {node.op} does not point back at its node", node)
            self.define(v, node)

    def _check_attrs(self, node: Node) -> None:
        op = get_op(node.op)
        try:
            normalized = op.normalize_attrs(node.attrs)
        except ArchirError as err:
            raise self.fail(err.message, node) from None
        for key, value in normalized.items():
            if key not in node.attrs:
                raise self.fail(f"attribute '{key}' of {node.op} is missing (its default "
                                f"{value!r} must be filled in)", node)
            if not attr_equal(node.attrs[key], value):
                raise self.fail(f"attribute '{key}' of {node.op} is not in canonical form "
                                f"({node.attrs.get(key)!r} should be {value!r})", node)

    def _region(self, node: Node, region: Region, index: int) -> None:
        op = get_op(node.op)
        if region.name != op.regions[index]:
            raise self.fail(f"region {index} of {node.op} must be named "
                            f"'{op.regions[index]}', not '{region.name}'", node)
        assert op.region_args is not None
        try:
            expected = op.region_args(*op.pad_operands([v.type for v in node.inputs]),
                                      **node.attrs)[index]
        except ArchirError as err:
            raise self.fail(err.message, node) from None
        got = [v.type for v in region.args]
        if got != list(expected):
            raise self.fail(
                f"region '{region.name}' of {node.op} takes ({', '.join(map(str, got))}) but "
                f"must take ({', '.join(map(str, expected))})", node)
        self.scopes.append(set())
        for v in region.args:
            if v.kind != "region_arg":
                raise self.fail(f"region '{region.name}' argument {_name(v)} is not a region_arg",
                                node)
            self.define(v, node)
        self._nodes(region.nodes)
        for v in region.results:
            if not self.visible(v):
                raise self.fail(f"region '{region.name}' of {node.op} yields {_name(v)}, "
                                "which is not defined in its scope", node)
        self.scopes.pop()

    def _check_types(self, node: Node) -> None:
        op = get_op(node.op)
        try:
            inferred = infer_types(op, node.inputs, node.attrs, node.regions)
        except ArchirError as err:
            raise self.fail(err.message, node) from None
        declared = [v.type for v in node.outputs]
        if len(declared) != len(inferred):
            raise self.fail(f"{node.op} declares {len(declared)} results but inference gives "
                            f"{len(inferred)}", node)
        for i, (d, t) in enumerate(zip(declared, inferred, strict=True)):
            if d != t:
                raise self.fail(f"result {i} of {node.op} is declared {d} but inference gives {t}",
                                node)
