"""Parses `.air` text into a `Graph` (the grammar is in docs/ir.md).

The parser checks syntax, names (defined once, defined before use, in scope), op names,
operand counts and attributes; whether the declared types are right is the verifier's job.
Every error reads `file:line:col: error: ...`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from archir.errors import ArchirError, Location, ParseError
from archir.ir import Graph, Node, Region, Value
from archir.registry import get_op
from archir.symbolic import Dim, DimSyntaxError, parse_dim
from archir.types import DType, TensorType, TupleType, Type

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r]+|\#[^\n]*) |
    (?P<nl>\n) |
    (?P<value>%(?:"(?:[^"\\\n]|\\.)*"|[A-Za-z0-9_$.\-]+)) |
    (?P<symbol>@(?:"(?:[^"\\\n]|\\.)*"|[A-Za-z0-9_$.\-]+)) |
    (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?) |
    (?P<string>"(?:[^"\\\n]|\\.)*") |
    (?P<ident>[A-Za-z_][A-Za-z0-9_]*) |
    (?P<punct>->|//|[()\[\]{}<>,:=*+\-])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    line: int
    col: int


def tokenize(text: str, filename: str) -> list[Token]:
    tokens: list[Token] = []
    line, line_start, pos = 1, 0, 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            loc = Location(filename, line, pos - line_start + 1)
            raise ParseError(f"unexpected character {text[pos]!r}", loc=loc)
        kind = match.lastgroup or ""
        if kind == "nl":
            line, line_start = line + 1, match.end()
        elif kind != "ws":
            tokens.append(Token(kind, match.group(), line, pos - line_start + 1))
        pos = match.end()
    tokens.append(Token("eof", "", line, pos - line_start + 1))
    return tokens


def _unquote(name: str) -> str:
    return json.loads(name) if name.startswith('"') else name


class _Scope:
    """Names visible at a point: a chain of dicts, innermost last."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Value]] = [{}]

    def lookup(self, name: str) -> Value | None:
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        return None

    def define(self, name: str, value: Value) -> bool:
        if self.lookup(name) is not None:
            return False
        self.frames[-1][name] = value
        return True


class Parser:
    def __init__(self, text: str, filename: str = "<string>") -> None:
        self.filename = filename
        self.tokens = tokenize(text, filename)
        self.i = 0
        self.scope = _Scope()

    # -- token helpers ------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def loc(self, tok: Token | None = None) -> Location:
        t = tok or self.tok
        return Location(self.filename, t.line, t.col)

    def error(self, message: str, tok: Token | None = None) -> ParseError:
        return ParseError(message, loc=self.loc(tok))

    def at(self, text: str) -> bool:
        return self.tok.text == text and self.tok.kind in ("punct", "ident")

    def expect(self, text: str) -> Token:
        if not self.at(text):
            found = self.tok.text or "end of file"
            raise self.error(f"expected '{text}', found '{found}'")
        return self.advance()

    def expect_kind(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(f"expected {what}, found '{self.tok.text or 'end of file'}'")
        return self.advance()

    def advance(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    # -- graph --------------------------------------------------------------------------------
    def parse_graph(self) -> Graph:
        start = self.expect("graph")
        name = _unquote(self.expect_kind("symbol", "a graph name like @model").text[1:])
        inputs = self._arg_list("input")
        self.expect("->")
        out_types = [self.parse_type()]
        while self.at(","):
            self.advance()
            out_types.append(self.parse_type())
        params: list[Value] = []
        if self.at("params"):
            self.advance()
            params = self._arg_list("param")
        self.expect("{")
        nodes = self._statements()
        ret = self.expect("return")
        outputs = self._operands()
        self.expect("}")
        if self.tok.kind != "eof":
            raise self.error(f"expected end of file after the graph, found '{self.tok.text}'")
        graph = Graph(name, inputs, params, nodes, outputs, loc=self.loc(start))
        if len(outputs) != len(out_types) or any(
            v.type != t for v, t in zip(outputs, out_types, strict=False)
        ):
            got = ", ".join(str(v.type) for v in outputs)
            want = ", ".join(map(str, out_types))
            raise self.error(f"return gives ({got}) but the graph declares ({want})", ret)
        return graph

    def _arg_list(self, kind: str) -> list[Value]:
        self.expect("(")
        values: list[Value] = []
        while not self.at(")"):
            if values:
                self.expect(",")
            tok = self.expect_kind("value", "a value name like %x")
            self.expect(":")
            value = Value(self.parse_type(), kind, _unquote(tok.text[1:]))  # type: ignore[arg-type]
            self._define(tok, value)
            values.append(value)
        self.expect(")")
        return values

    def _define(self, tok: Token, value: Value) -> None:
        name = _unquote(tok.text[1:])
        if not self.scope.define(name, value):
            raise self.error(f"value {tok.text} is defined twice", tok)

    # -- statements ---------------------------------------------------------------------------
    def _statements(self) -> list[Node]:
        nodes: list[Node] = []
        while self.tok.kind == "value":
            nodes.append(self._node())
        return nodes

    def _node(self) -> Node:
        first = self.tok
        result_toks = [self.expect_kind("value", "a result name")]
        while self.at(","):
            self.advance()
            result_toks.append(self.expect_kind("value", "a result name"))
        self.expect("=")
        op_tok = self.expect_kind("ident", "an op name")
        try:
            op = get_op(op_tok.text)
        except ArchirError as err:
            raise err.with_context(loc=self.loc(op_tok)) from None
        self.expect("(")
        inputs = self._operands(")")
        self.expect(")")
        attrs_tok = self.tok
        raw_attrs = self._attr_dict() if self.at("{") else {}
        node = Node(op.name, inputs, {}, loc=self.loc(first))
        try:
            op.check_operand_count(len(inputs))
        except ArchirError as err:
            raise err.with_context(loc=self.loc(op_tok)) from None
        try:
            node.attrs = op.normalize_attrs(raw_attrs)
        except ArchirError as err:
            raise err.with_context(loc=self.loc(attrs_tok if raw_attrs else op_tok)) from None
        types_tok = self.expect(":")
        types = [self.parse_type()]
        while self.at(","):
            self.advance()
            types.append(self.parse_type())
        if len(types) != len(result_toks):
            raise self.error(f"{len(result_toks)} results but {len(types)} types", types_tok)
        if self.tok.kind == "symbol":
            node.name = _unquote(self.advance().text[1:])
        node.regions = self._regions(op.name, op.regions)
        for i, (tok, t) in enumerate(zip(result_toks, types, strict=True)):
            name = _unquote(tok.text[1:])
            value = Value(t, "result", None if name.isdigit() else name, node, i)
            self._define(tok, value)
            node.outputs.append(value)
        return node

    def _regions(self, op: str, names: tuple[str, ...]) -> list[Region]:
        regions: list[Region] = []
        for i, name in enumerate(names):
            if i:
                self.expect("}")
            if not self.at(name):
                raise self.error(f"expected region '{name}' of {op} (its regions: "
                                 f"{', '.join(names)}), found '{self.tok.text or 'end of file'}'")
            self.advance()
            self.scope.frames.append({})
            args = self._arg_list("region_arg")
            for a in args:
                if a.name is not None and a.name.isdigit():
                    a.name = None
            self.expect("{")
            nodes = self._statements()
            self.expect("yield")
            results = self._operands("}")
            self.scope.frames.pop()
            regions.append(Region(args, nodes, results, name))
        if names:
            self.expect("}")
        # An identifier opening a parenthesis here can only be one region too many.
        if self.tok.kind == "ident" and self.tokens[self.i + 1].text == "(":
            takes = f"{len(names)} regions ({', '.join(names)})" if names else "no regions"
            raise self.error(f"{op} takes {takes}, found another region '{self.tok.text}'")
        return regions

    def _operands(self, stop: str | None = None) -> list[Value]:
        values: list[Value] = []
        if stop is not None and self.at(stop):
            return values
        while True:
            tok = self.expect_kind("value", "a value like %0")
            value = self.scope.lookup(_unquote(tok.text[1:]))
            if value is None:
                raise self.error(f"use of undefined value {tok.text}", tok)
            values.append(value)
            if not self.at(","):
                return values
            self.advance()

    # -- types --------------------------------------------------------------------------------
    def parse_type(self) -> Type:
        tok = self.tok
        if tok.kind == "ident" and tok.text == "tuple":
            self.advance()
            self.expect("<")
            elements = [self.parse_type()]
            while self.at(","):
                self.advance()
                elements.append(self.parse_type())
            self.expect(">")
            return TupleType(tuple(elements))
        if tok.kind != "ident" or tok.text not in DType.__members__:
            raise self.error(f"expected a type like f32[B, 768], found '{tok.text or 'end of file'}'")
        self.advance()
        self.expect("[")
        dims: list[Dim] = []
        while not self.at("]"):
            if dims:
                self.expect(",")
            dims.append(self._dim())
        self.expect("]")
        return TensorType(tuple(dims), DType[tok.text])

    def _dim(self) -> Dim:
        """A dim expression: the tokens up to the next ',' or ']' outside parentheses."""
        start = self.tok
        parts: list[Token] = []
        depth = 0
        while self.tok.kind != "eof" and not (depth == 0 and self.tok.text in (",", "]")):
            if self.tok.kind not in ("number", "ident", "punct") or self.tok.text in "{}[]<>:=":
                break
            depth += {"(": 1, ")": -1}.get(self.tok.text, 0)
            parts.append(self.advance())
        if not parts:
            raise self.error("expected a dim (an integer or a symbol)")
        text = " ".join(t.text for t in parts)
        try:
            return parse_dim(text)
        except DimSyntaxError as err:
            # Map the character offset back onto the token it falls in.
            bad, offset = parts[0], 0
            for t in parts:
                if offset > err.offset:
                    break
                bad = t
                offset += len(t.text) + 1
            raise self.error(f"bad dim '{text}': {err}", bad if parts else start) from None

    # -- attributes ---------------------------------------------------------------------------
    def _attr_dict(self) -> dict[str, Any]:
        self.expect("{")
        attrs: dict[str, Any] = {}
        while not self.at("}"):
            if attrs:
                self.expect(",")
            key = self.expect_kind("ident", "an attribute name")
            if key.text in attrs:
                raise self.error(f"attribute '{key.text}' is given twice", key)
            self.expect("=")
            attrs[key.text] = self._attr_value()
        self.expect("}")
        return attrs

    def _attr_value(self) -> Any:
        tok = self.tok
        if tok.kind == "string":
            self.advance()
            return json.loads(tok.text)
        if self.at("["):
            self.advance()
            items: list[Any] = []
            while not self.at("]"):
                if items:
                    self.expect(",")
                items.append(self._attr_value())
            self.expect("]")
            return items
        if tok.kind == "ident" and tok.text in ("true", "false", "none"):
            self.advance()
            return {"true": True, "false": False, "none": None}[tok.text]
        if tok.kind == "ident" and tok.text in DType.__members__:
            self.advance()
            return DType[tok.text]
        sign = ""
        if self.at("-") and self.tokens[self.i + 1].text in ("inf", "nan"):
            sign = self.advance().text
        if self.tok.kind == "ident" and self.tok.text in ("inf", "nan"):
            return float(sign + self.advance().text)
        if self.at("-") and self.tokens[self.i + 1].kind == "number":
            number = self.tokens[self.i + 1].text
            if any(c in number for c in ".eE"):
                self.i += 2
                return -float(number)
        if tok.kind == "number" and any(c in tok.text for c in ".eE"):
            self.advance()
            return float(tok.text)
        return self._dim()


def parse(text: str, filename: str = "<string>") -> Graph:
    """Parse one graph from `.air` text; errors name `filename:line:col`."""
    return Parser(text, filename).parse_graph()
