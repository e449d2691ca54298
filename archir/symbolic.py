"""Symbolic dimensions: integer polynomials over named sizes, with exact floor division.

A dim is an `int` or a `SymExpr` such as `B`, `B*T`, `T + 1` or `((H - 3) // 2) + 1`. Expressions
are kept in one canonical form, so two equal expressions compare, hash and print alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from archir.errors import TypeInferenceError


@dataclass(frozen=True, slots=True)
class FloorDiv:
    """`num // den` where `num` is not divisible by `den`: an opaque factor of a monomial."""

    num: SymExpr
    den: int

    def __str__(self) -> str:
        inner = str(self.num)
        if len(self.num.terms) > 1 or self.num.terms[0][1] != 1:
            inner = f"({inner})"
        return f"({inner} // {self.den})"


Atom = str | FloorDiv
Monomial = tuple[Atom, ...]


def _atom_key(atom: Atom) -> str:
    return atom if isinstance(atom, str) else "~" + str(atom)


@dataclass(frozen=True, slots=True)
class SymExpr:
    """A canonical integer polynomial: `terms` pairs a sorted monomial with a non-zero coefficient."""

    terms: tuple[tuple[Monomial, int], ...]

    # -- construction -------------------------------------------------------------------------
    @staticmethod
    def symbol(name: str) -> SymExpr:
        return SymExpr((((name,), 1),))

    @staticmethod
    def _from_dict(poly: dict[Monomial, int]) -> Dim:
        items = [(m, c) for m, c in poly.items() if c != 0]
        items.sort(key=lambda mc: (-len(mc[0]), [_atom_key(a) for a in mc[0]]))
        if not items:
            return 0
        if len(items) == 1 and items[0][0] == ():
            return items[0][1]
        return SymExpr(tuple(items))

    def _as_dict(self) -> dict[Monomial, int]:
        return dict(self.terms)

    # -- arithmetic ---------------------------------------------------------------------------
    def __add__(self, other: Dim) -> Dim:
        poly = self._as_dict()
        for mono, coef in _poly(other).items():
            poly[mono] = poly.get(mono, 0) + coef
        return SymExpr._from_dict(poly)

    __radd__ = __add__

    def __neg__(self) -> Dim:
        return SymExpr._from_dict({m: -c for m, c in self.terms})

    def __sub__(self, other: Dim) -> Dim:
        return self + (-_as_expr(other))

    def __rsub__(self, other: Dim) -> Dim:
        return _as_expr(other) + (-self)

    def __mul__(self, other: Dim) -> Dim:
        poly: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in _poly(other).items():
                mono = tuple(sorted(m1 + m2, key=_atom_key))
                poly[mono] = poly.get(mono, 0) + c1 * c2
        return SymExpr._from_dict(poly)

    __rmul__ = __mul__

    def __floordiv__(self, den: int) -> Dim:
        if not isinstance(den, int) or den <= 0:
            raise TypeInferenceError(f"symbolic dim {self} can only be divided by a positive int")
        if all(c % den == 0 for _, c in self.terms):
            return SymExpr._from_dict({m: c // den for m, c in self.terms})
        inner = self.terms[0][0][0] if len(self.terms) == 1 and self.terms[0][1] == 1 else None
        if isinstance(inner, FloorDiv) and len(self.terms[0][0]) == 1:
            # (x // a) // b == x // (a * b) for integers; one form, so strided sizes compare equal
            return inner.num // (inner.den * den)
        return SymExpr((((FloorDiv(self, den),), 1),))

    # -- queries ------------------------------------------------------------------------------
    def as_symbol(self) -> str | None:
        """The name when this is a bare symbol such as `B`, else None."""
        if len(self.terms) == 1:
            mono, coef = self.terms[0]
            if coef == 1 and len(mono) == 1 and isinstance(mono[0], str):
                return mono[0]
        return None

    def free_symbols(self) -> set[str]:
        names: set[str] = set()
        for mono, _ in self.terms:
            for atom in mono:
                names |= {atom} if isinstance(atom, str) else atom.num.free_symbols()
        return names

    def substitute(self, bindings: Mapping[str, Dim]) -> Dim:
        """Replace the bound symbols; the result is an int once every symbol is bound."""
        total: Dim = 0
        for mono, coef in self.terms:
            term: Dim = coef
            for atom in mono:
                if isinstance(atom, str):
                    value = bindings.get(atom, SymExpr.symbol(atom))
                else:
                    value = floordiv(atom.num.substitute(bindings), atom.den)
                term = mul(term, value)
            total = add(total, term)
        return total

    def evaluate(self, bindings: Mapping[str, int]) -> int:
        value = self.substitute(bindings)
        if not isinstance(value, int):
            missing = sorted(self.free_symbols() - set(bindings))
            raise TypeInferenceError(f"symbolic dim {self} has unbound symbols {missing}")
        return value

    def __str__(self) -> str:
        text = ""
        for i, (mono, coef) in enumerate(self.terms):
            factors = [str(a) for a in mono]
            magnitude = abs(coef)
            if magnitude != 1 or not factors:
                factors.insert(0, str(magnitude))
            body = "*".join(factors)
            if i == 0:
                text = ("-" if coef < 0 else "") + body
            else:
                text += (" - " if coef < 0 else " + ") + body
        return text

    def __repr__(self) -> str:
        return f"SymExpr({str(self)!r})"


Dim = int | SymExpr


def _as_expr(d: Dim) -> SymExpr:
    if isinstance(d, SymExpr):
        return d
    return SymExpr((((), d),) if d else ())


def _poly(d: Dim) -> dict[Monomial, int]:
    return _as_expr(d)._as_dict()


def add(a: Dim, b: Dim) -> Dim:
    return a + b if isinstance(a, int) and isinstance(b, int) else _as_expr(a) + b


def sub(a: Dim, b: Dim) -> Dim:
    return a - b if isinstance(a, int) and isinstance(b, int) else _as_expr(a) - b


def mul(a: Dim, b: Dim) -> Dim:
    return a * b if isinstance(a, int) and isinstance(b, int) else _as_expr(a) * b


def floordiv(a: Dim, den: int) -> Dim:
    return a // den


def product(dims: tuple[Dim, ...] | list[Dim]) -> Dim:
    total: Dim = 1
    for d in dims:
        total = mul(total, d)
    return total


def exact_div(a: Dim, b: Dim) -> Dim | None:
    """`a / b` when it is an exact polynomial quotient and `b` is one monomial; else None."""
    if isinstance(b, int):
        if b == 0:
            return None
        if isinstance(a, int):
            return a // b if a % b == 0 else None
        if all(c % b == 0 for _, c in a.terms):
            return SymExpr._from_dict({m: c // b for m, c in a.terms})
        return None
    if len(b.terms) != 1:
        return None
    b_mono, b_coef = b.terms[0]
    quotient: dict[Monomial, int] = {}
    for mono, coef in _poly(a).items():
        rest = list(mono)
        for atom in b_mono:
            if atom not in rest:
                return None
            rest.remove(atom)
        if coef % b_coef:
            return None
        quotient[tuple(rest)] = coef // b_coef
    return SymExpr._from_dict(quotient)


def free_symbols(d: Dim) -> set[str]:
    return set() if isinstance(d, int) else d.free_symbols()


def substitute(d: Dim, bindings: Mapping[str, Dim]) -> Dim:
    return d if isinstance(d, int) else d.substitute(bindings)


def evaluate(d: Dim, bindings: Mapping[str, int]) -> int:
    return d if isinstance(d, int) else d.evaluate(bindings)


# -- parsing dims from text -------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(//|[-+*()]))")


class DimSyntaxError(ValueError):
    """Raised by `parse_dim`; `offset` is the character where it went wrong."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def parse_dim(text: str) -> Dim:
    """Parse `768`, `B`, `B*T`, `2*T + 1`, `((H - 3) // 2) + 1` into a canonical dim."""
    tokens: list[tuple[str, int]] = []
    pos = 0
    stripped_end = len(text.rstrip())
    while pos < stripped_end:
        match = _TOKEN.match(text, pos)
        if not match:
            raise DimSyntaxError(f"unexpected character {text[pos]!r} in dim", pos)
        start = match.start(match.lastindex or 0)
        tokens.append((match.group(match.lastindex or 0), start))
        pos = match.end()
    parser = _DimParser(tokens, len(text))
    value = parser.sum()
    if parser.i != len(tokens):
        raise DimSyntaxError(f"unexpected {tokens[parser.i][0]!r} in dim", tokens[parser.i][1])
    return value


class _DimParser:
    def __init__(self, tokens: list[tuple[str, int]], end: int) -> None:
        self.tokens = tokens
        self.end = end
        self.i = 0

    def _peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def _offset(self) -> int:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else self.end

    def sum(self) -> Dim:
        value = self.product()
        while self._peek() in ("+", "-"):
            op = self.tokens[self.i][0]
            self.i += 1
            rhs = self.product()
            value = add(value, rhs) if op == "+" else sub(value, rhs)
        return value

    def product(self) -> Dim:
        value = self.unary()
        while self._peek() in ("*", "//"):
            op = self.tokens[self.i][0]
            self.i += 1
            offset = self._offset()
            rhs = self.unary()
            if op == "*":
                value = mul(value, rhs)
            elif not isinstance(rhs, int) or rhs <= 0:
                raise DimSyntaxError("'//' needs a positive integer on its right", offset)
            else:
                value = floordiv(value, rhs)
        return value

    def unary(self) -> Dim:
        if self._peek() == "-":
            self.i += 1
            return sub(0, self.unary())
        return self.atom()

    def atom(self) -> Dim:
        tok = self._peek()
        offset = self._offset()
        if tok is None:
            raise DimSyntaxError("expected a dim", offset)
        self.i += 1
        if tok.isdigit():
            return int(tok)
        if tok == "(":
            value = self.sum()
            if self._peek() != ")":
                raise DimSyntaxError("expected ')'", self._offset())
            self.i += 1
            return value
        if tok[0].isalpha() or tok[0] == "_":
            return SymExpr.symbol(tok)
        raise DimSyntaxError(f"unexpected {tok!r} in dim", offset)


def as_dim(value: int | str | SymExpr) -> Dim:
    """Accept what users write (`768`, `"B"`, `"B*T"`) and return a canonical dim."""
    if isinstance(value, bool):
        raise TypeInferenceError(f"a dim must be an int or a symbol, got {value!r}")
    if isinstance(value, int | SymExpr):
        return value
    if isinstance(value, str):
        try:
            return parse_dim(value)
        except DimSyntaxError as err:
            raise TypeInferenceError(f"bad dim {value!r}: {err}") from None
    raise TypeInferenceError(f"a dim must be an int or a symbol, got {value!r}")


def dim_str(d: Dim) -> str:
    return str(d)
