"""Symbolic dims: canonical form, printing and parsing back, evaluation, and error messages."""

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archir import TypeInferenceError
from archir.symbolic import (
    Dim,
    DimSyntaxError,
    SymExpr,
    add,
    as_dim,
    evaluate,
    exact_div,
    floordiv,
    free_symbols,
    mul,
    parse_dim,
    product,
    sub,
    substitute,
)

SYMBOLS = ("B", "T", "H", "n_head")
B, T, H = SymExpr.symbol("B"), SymExpr.symbol("T"), SymExpr.symbol("H")

# An expression is drawn as a triple: the Dim built with archir's arithmetic, the same
# expression as a Python function of the symbol values, and source text in Python syntax.
Drawn = tuple[Dim, Callable[[dict[str, int]], int], str]


def _leaf() -> st.SearchStrategy[Drawn]:
    ints = st.integers(-6, 6).map(lambda i: (i, lambda env, i=i: i, str(i)))
    syms = st.sampled_from(SYMBOLS).map(
        lambda s: (SymExpr.symbol(s), lambda env, s=s: env[s], s))
    return st.one_of(ints, syms)


def _binary(children: st.SearchStrategy[Drawn], build: Callable[[Dim, Dim], Dim],
            py: Callable[[int, int], int], sign: str) -> st.SearchStrategy[Drawn]:
    def combine(pair: tuple[Drawn, Drawn]) -> Drawn:
        (a, fa, sa), (b, fb, sb) = pair
        return build(a, b), lambda env: py(fa(env), fb(env)), f"({sa} {sign} {sb})"

    return st.tuples(children, children).map(combine)


def _extend(children: st.SearchStrategy[Drawn]) -> st.SearchStrategy[Drawn]:
    def div(pair: tuple[Drawn, int]) -> Drawn:
        (a, fa, sa), den = pair
        return floordiv(a, den), lambda env: fa(env) // den, f"({sa} // {den})"

    def neg(drawn: Drawn) -> Drawn:
        a, fa, sa = drawn
        return sub(0, a), lambda env: -fa(env), f"(-{sa})"

    return st.one_of(
        _binary(children, add, lambda x, y: x + y, "+"),
        _binary(children, sub, lambda x, y: x - y, "-"),
        _binary(children, mul, lambda x, y: x * y, "*"),
        st.tuples(children, st.integers(1, 5)).map(div),
        children.map(neg),
    )


expressions = st.recursive(_leaf(), _extend, max_leaves=10)
bindings = st.fixed_dictionaries({s: st.integers(-20, 20) for s in SYMBOLS})


@settings(max_examples=400, deadline=None, derandomize=True)
@given(expressions, bindings)
def test_print_parse_and_evaluate_agree_with_python(drawn, env):
    dim, python, source = drawn
    text = str(dim)
    assert parse_dim(text) == dim
    assert hash(parse_dim(text)) == hash(dim)
    assert parse_dim(source) == dim  # the Python spelling means the same expression
    assert str(parse_dim(text)) == text
    assert evaluate(dim, env) == python(env)
    assert isinstance(dim, int) or dim.free_symbols() <= set(SYMBOLS)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(expressions, expressions, bindings)
def test_arithmetic_is_canonical(first, second, env):
    a, b = first[0], second[0]
    assert add(a, b) == add(b, a)
    assert mul(a, b) == mul(b, a)
    assert sub(add(a, b), b) == a
    assert evaluate(mul(add(a, b), 2), env) == 2 * (evaluate(a, env) + evaluate(b, env))
    assert evaluate(product([a, b, 3]), env) == evaluate(a, env) * evaluate(b, env) * 3


def test_canonical_forms_and_printing():
    assert add(T, B) == add(B, T) and str(add(T, B)) == "B + T"
    assert str(mul(T, B)) == "B*T"
    assert str(add(T, 1)) == "T + 1" and str(sub(1, T)) == "-T + 1"
    assert str(mul(mul(2, B), sub(T, 3))) == "2*B*T - 6*B"
    assert str(mul(B, B)) == "B*B"
    assert str(floordiv(sub(H, 3), 2) + 1) == "((H - 3) // 2) + 1"
    assert str(floordiv(B, 2)) == "(B // 2)"
    assert str(floordiv(mul(-1, B), 2)) == "((-B) // 2)"
    assert str(mul(3, floordiv(B, 2))) == "3*(B // 2)"
    assert sub(B, B) == 0 and isinstance(sub(B, B), int)
    assert add(sub(T, 1), 1) == T
    assert floordiv(mul(4, B), 2) == mul(2, B)  # exact division folds
    assert floordiv(B, 1) == B
    assert floordiv(floordiv(sub(H, 1), 2), 2) == floordiv(sub(H, 1), 4)  # nested divisions merge
    assert floordiv(7, 2) == 3 and floordiv(-7, 2) == -4
    assert repr(add(B, 1)) == "SymExpr('B + 1')"


def test_queries():
    bt1 = add(mul(B, T), 1)
    assert B.as_symbol() == "B" and bt1.as_symbol() is None and mul(2, B).as_symbol() is None
    assert free_symbols(bt1) == {"B", "T"} and free_symbols(4) == set()
    assert free_symbols(floordiv(H, 2)) == {"H"}
    assert substitute(bt1, {"B": 2}) == add(mul(2, T), 1)
    assert substitute(bt1, {"B": 2, "T": 5}) == 11
    assert substitute(bt1, {"B": T}) == add(mul(T, T), 1)
    assert evaluate(floordiv(sub(H, 3), 2) + 1, {"H": 10}) == 4
    assert evaluate(7, {}) == 7


def test_exact_div():
    assert exact_div(mul(B, T), T) == B
    assert exact_div(add(mul(B, T), T), T) == add(B, 1)
    assert exact_div(mul(6, B), 3) == mul(2, B)
    assert exact_div(mul(2, B), B) == 2
    assert exact_div(12, 4) == 3
    assert exact_div(0, B) == 0
    assert exact_div(B, T) is None
    assert exact_div(B, mul(2, B)) is None
    assert exact_div(add(B, 1), 2) is None
    assert exact_div(7, 2) is None and exact_div(6, 0) is None and exact_div(B, 0) is None
    assert exact_div(6, B) is None
    assert exact_div(B, add(B, 1)) is None  # only single-monomial divisors


def test_as_dim_accepts_what_users_write():
    assert as_dim(768) == 768
    assert as_dim("B") == B
    assert as_dim("B*T") == mul(B, T)
    assert as_dim(" 2*T + 1 ") == add(mul(2, T), 1)
    assert as_dim("4 // 2") == 2
    assert as_dim(B) is B


@pytest.mark.parametrize(("value", "message"), [
    (True, "a dim must be an int or a symbol, got True"),
    (1.5, "a dim must be an int or a symbol, got 1.5"),
    ("B +", "bad dim 'B +': expected a dim"),
    ("B/2", "bad dim 'B/2': unexpected character '/' in dim"),
    ("B // T", "bad dim 'B // T': '//' needs a positive integer on its right"),
    ("B // 0", "bad dim 'B // 0': '//' needs a positive integer on its right"),
    ("(B", "bad dim '(B': expected ')'"),
    ("B)", "bad dim 'B)': unexpected ')' in dim"),
    ("", "bad dim '': expected a dim"),
])
def test_as_dim_errors(value, message):
    with pytest.raises(TypeInferenceError) as info:
        as_dim(value)
    assert info.value.message == message


@pytest.mark.parametrize(("text", "offset"), [
    ("B +", 3), ("B/2", 1), ("B // T", 5), ("(B", 2), ("B)", 1), ("B T", 2), ("  ", 2), ("2.5", 1),
])
def test_parse_dim_reports_the_offset(text, offset):
    with pytest.raises(DimSyntaxError) as info:
        parse_dim(text)
    assert info.value.offset == offset


def test_symbolic_errors():
    with pytest.raises(TypeInferenceError, match=r"symbolic dim B can only be divided by a positive int"):
        floordiv(B, 0)
    with pytest.raises(TypeInferenceError, match=r"symbolic dim B can only be divided by a positive int"):
        floordiv(B, T)
    with pytest.raises(TypeInferenceError) as info:
        evaluate(add(mul(B, T), H), {"B": 2})
    assert info.value.message == "symbolic dim B*T + H has unbound symbols ['H', 'T']"
