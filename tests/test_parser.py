"""The `.air` parser: exact error positions and messages, and hand-written text that round-trips."""

import math

import numpy as np
import pytest

from archir import ArchirError, GraphBuilder, OpDefinitionError, ParseError, TupleType, f32, i64
from archir.parser import Parser, parse
from archir.printer import format_attr, print_graph
from archir.registry import AttrKind, attr, coerce_attr
from archir.symbolic import as_dim
from archir.verifier import verify


def parse_error(text: str) -> ArchirError:
    with pytest.raises(ArchirError) as info:
        parse(text, "model.air")
    return info.value


def round_trip(text: str) -> str:
    """Parse, verify, print: the canonical text of `text`."""
    graph = parse(text, "model.air")
    verify(graph)
    return print_graph(graph)


UNARY = "graph @g(%x: f32[4]) -> f32[4] {{\n  {}\n  return %0\n}}\n"

ERRORS = [
    # (text, error class, exact first line of the message)
    (UNARY.format("%0 = exp(%x) ? f32[4]"), ParseError,
     "model.air:2:16: error: unexpected character '?'"),
    (UNARY.format("%0 = exp(%x : f32[4]"), ParseError,
     "model.air:2:15: error: expected ')', found ':'"),
    (UNARY.format("%0 = exp(%y) : f32[4]"), ParseError,
     "model.air:2:12: error: use of undefined value %y"),
    (UNARY.format("%0 = gelu(%x) {approximate = 3} : f32[4]"), OpDefinitionError,
     "model.air:2:17: error: gelu attribute 'approximate' must be str, got 3"),
    (UNARY.format('%0 = clamp(%x) {min = "low"} : f32[4]'), OpDefinitionError,
     "model.air:2:18: error: clamp attribute 'min' must be float, got 'low'"),
    (UNARY.format("%0 = cast(%x) {dtype = none} : f32[4]"), OpDefinitionError,
     "model.air:2:17: error: cast attribute 'dtype' may not be none"),
    (UNARY.format('%0 = gelu(%x) {approximate = "fast"} : f32[4]'), OpDefinitionError,
     "model.air:2:17: error: gelu attribute 'approximate' must be one of 'none', 'tanh', got 'fast'"),
    (UNARY.format("%0 = cast(%x) : f32[4]"), OpDefinitionError,
     "model.air:2:8: error: cast needs attribute 'dtype' (dtype)"),
    (UNARY.format("%0 = clamp(%x) {min = 1.0, min = 2.0} : f32[4]"), ParseError,
     "model.air:2:30: error: attribute 'min' is given twice"),
    (UNARY.format("%0 = exp(%x, %x) : f32[4]"), OpDefinitionError,
     "model.air:2:8: error: exp takes 1 operands (x), got 2"),
    (UNARY.format("%0 = clamp(%x, %x) {min = 1.0} : f32[4]"), OpDefinitionError,
     "model.air:2:8: error: clamp takes 1 operands (x), got 2"),
    (UNARY.format("%0, %1 = exp(%x) : f32[4]"), ParseError,
     "model.air:2:20: error: 2 results but 1 types"),
    (UNARY.format("%0 = exp(%x) : f32[4], f32[4]"), ParseError,
     "model.air:2:16: error: 1 results but 2 types"),
    (UNARY.format("%0 = exp(%x) : f33[4]"), ParseError,
     "model.air:2:18: error: expected a type like f32[B, 768], found 'f33'"),
    ("graph @g(%x: f32[B +]) -> f32[4] {\n  return %x\n}\n", ParseError,
     "model.air:1:20: error: bad dim 'B +': expected a dim"),
    ("graph @g(%x: f32[B T]) -> f32[4] {\n  return %x\n}\n", ParseError,
     "model.air:1:20: error: bad dim 'B T': unexpected 'T' in dim"),
    ("graph @g(%x: f32[B // 0]) -> f32[4] {\n  return %x\n}\n", ParseError,
     "model.air:1:23: error: bad dim 'B // 0': '//' needs a positive integer on its right"),
    ("graph @g(%x: f32[(B + 1]) -> f32[4] {\n  return %x\n}\n", ParseError,
     "model.air:1:23: error: bad dim '( B + 1': expected ')'"),
    ("graph @g(%x: f32[2.5]) -> f32[4] {\n  return %x\n}\n", ParseError,
     "model.air:1:18: error: bad dim '2.5': unexpected character '.' in dim"),
    ("graph @g(%x: f32[4]) -> f32[4] {\n  %0 = exp(%x) : f32[4]\n}\n", ParseError,
     "model.air:3:1: error: expected 'return', found '}'"),
    ("graph @g(%x: f32[4]) -> f32[4] {\n  return %x\n}\nfoo\n", ParseError,
     "model.air:4:1: error: expected end of file after the graph, found 'foo'"),
    ("graph @g(%x: f32[4]) -> f32[4] {\n  return %x\n}\ngraph @h() -> f32[4] {\n}\n", ParseError,
     "model.air:4:1: error: expected end of file after the graph, found 'graph'"),
    ("graph @g(%x: f32[4]) -> f32[4] {\n  return %x\n", ParseError,
     "model.air:3:1: error: expected '}', found 'end of file'"),
    ("graph @g(%x: f32[4]) -> f32[5] {\n  return %x\n}\n", ParseError,
     "model.air:2:3: error: return gives (f32[4]) but the graph declares (f32[5])"),
    ("graph @g(%x: f32[4]) -> f32[4], f32[4] {\n  return %x\n}\n", ParseError,
     "model.air:2:3: error: return gives (f32[4]) but the graph declares (f32[4], f32[4])"),
    ("graph @g(%x: f32[4], %x: f32[4]) -> f32[4] {\n  return %x\n}\n", ParseError,
     "model.air:1:22: error: value %x is defined twice"),
    ("graph @g(%x: f32[4]) -> f32[4] {\n  %0 = exp(%x) : f32[4]\n  %0 = exp(%x) : f32[4]\n"
     "  return %0\n}\n", ParseError, "model.air:3:3: error: value %0 is defined twice"),
    ("graph g(%x: f32[4]) -> f32[4] {\n  return %x\n}\n", ParseError,
     "model.air:1:7: error: expected a graph name like @model, found 'g'"),
    ("%0 = exp(%x)\n", ParseError, "model.air:1:1: error: expected 'graph', found '%0'"),
    ("", ParseError, "model.air:1:1: error: expected 'graph', found 'end of file'"),
    (UNARY.format('%0 = gelu(%x) {approximate = "tanh} : f32[4]'), ParseError,
     "model.air:2:32: error: unexpected character '\"'"),
]


@pytest.mark.parametrize(("text", "kind", "first_line"), ERRORS)
def test_errors_point_at_file_line_col(text, kind, first_line):
    err = parse_error(text)
    assert type(err) is kind
    assert str(err).splitlines()[0] == first_line


def test_unknown_op_suggests_a_close_name():
    err = parse_error(UNARY.format("%0 = gelux(%x) : f32[4]"))
    assert str(err).splitlines() == [
        "model.air:2:8: error: unknown op 'gelux'",
        "  hint: did you mean gelu, relu?",
    ]
    assert (err.loc.line, err.loc.col) == (2, 8)


def test_unknown_attribute_lists_the_known_ones():
    err = parse_error(UNARY.format('%0 = gelu(%x) {approx = "tanh"} : f32[4]'))
    assert str(err).splitlines() == [
        "model.air:2:17: error: gelu has no attribute 'approx'",
        "  hint: its attributes: approximate",
    ]


COND = """graph @g(%p: bool[], %x: f32[4]) -> f32[4] {
  %0 = cond(%p, %x) : f32[4] then(%a: f32[4]) {
    yield %a
  }{rest}
  return %0
}
"""


@pytest.mark.parametrize(("rest", "first_line"), [
    ("", "model.air:5:3: error: expected region 'else' of cond (its regions: then, else), "
         "found 'return'"),
    (" els(%b: f32[4]) {\n    yield %b\n  }",
     "model.air:4:5: error: expected region 'else' of cond (its regions: then, else), found 'els'"),
    (" else(%b: f32[4]) {\n    yield %b\n  } other(%c: f32[4]) {\n    yield %c\n  }",
     "model.air:6:5: error: cond takes 2 regions (then, else), found another region 'other'"),
    (" else(%b: f32[4]) {\n    yield %a\n  }", "model.air:5:11: error: use of undefined value %a"),
])
def test_region_count_names_and_scopes(rest, first_line):
    assert str(parse_error(COND.replace("{rest}", rest))).splitlines()[0] == first_line


def test_op_without_regions_rejects_a_region():
    err = parse_error(UNARY.format("%0 = exp(%x) : f32[4] body(%a: f32[4]) {\n    yield %a\n  }"))
    assert str(err).splitlines()[0] == \
        "model.air:2:25: error: exp takes no regions, found another region 'body'"


def test_region_values_are_not_visible_after_the_region():
    text = """graph @g(%c: f32[3], %xs: f32[5, 3]) -> f32[3] {
  %0 = scan(%c, %xs) {num_carry = 1} : f32[3] body(%1: f32[3], %2: f32[3]) {
    %3 = add(%1, %2) : f32[3]
    yield %3
  }
  return %3
}
"""
    assert str(parse_error(text)).splitlines()[0] == "model.air:6:10: error: use of undefined value %3"


# -- text that round-trips ---------------------------------------------------------------------
CANONICAL = [
    # quoted names, a named node scope, a param name with dots
    """graph @"my model"(%"a b": f32[B*T, 4], %x: f32[4]) -> f32[B*T, 4]
    params(%blocks.0.w: f32[4]) {
  %"c d" = mul(%"a b", %blocks.0.w) : f32[B*T, 4] @"blocks.0.my op"
  %0 = add(%"c d", %x) : f32[B*T, 4] @blocks.0.res
  return %0
}
""",
    # symbolic dims in inputs, attributes and results
    """graph @dims(%x: f32[B, T + 1, ((H - 3) // 2) + 1]) -> f32[B*T + B, ((H - 3) // 2) + 1] {
  %0 = reshape(%x) {shape = [B*T + B, ((H - 3) // 2) + 1]} : f32[B*T + B, ((H - 3) // 2) + 1]
  return %0
}
""",
    # tuple types in graph inputs and outputs
    """graph @tuples(%t: tuple<f32[4], i64[B]>, %n: tuple<tuple<f32[]>, bool[2]>, %x: f32[4]) -> \
f32[4], tuple<f32[4], i64[B]> {
  %0 = exp(%x) : f32[4]
  return %0, %t
}
""",
    # every attribute spelling: odd floats, negative ints, dtypes, strings, ints lists, bools
    """graph @attrs(%x: f32[2, 3]) -> f32[2, 3], bf16[2, 3], f32[3, 2], f32[2, 1] {
  %0 = clamp(%x) {min = -inf, max = 1e-05} : f32[2, 3]
  %1 = clamp(%0) {min = nan, max = inf} : f32[2, 3]
  %2 = cast(%1) {dtype = bf16} : bf16[2, 3]
  %3 = gelu(%1) {approximate = "tanh"} : f32[2, 3]
  %4 = transpose(%3) {perm = [1, 0]} : f32[3, 2]
  %5 = sum(%4) {axes = [-2], keepdims = true} : f32[1, 2]
  %6 = layer_norm(%x) {begin_axis = -2, eps = 1e-06} : f32[2, 3]
  %7 = full() {shape = [2, 1], value = -0.0} : f32[2, 1]
  return %1, %2, %4, %7
}
""",
    # regions nested two deep, capturing outer values
    """graph @loops(%c: f32[3], %xs: f32[5, 3], %s: f32[]) -> f32[3], f32[5, 3] {
  %0 = gt(%s, %s) : bool[]
  %1, %2 = scan(%c, %xs) {num_carry = 1, reverse = true} : f32[3], f32[5, 3] body(%3: f32[3], %4: f32[3]) {
    %5 = cond(%0, %3) : f32[3] then(%6: f32[3]) {
      %7 = add(%6, %4) : f32[3]
      yield %7
    } else(%8: f32[3]) {
      yield %c
    }
    yield %5, %4
  }
  return %1, %2
}
""",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_canonical_text_round_trips(text):
    assert round_trip(text) == text


def test_comments_spacing_and_spelling_are_normalised():
    text = """# a model with comments
graph @g(%x: f32[T*B, 1 + T], %y: f32[(H-3)//2+1]) -> f32[B*T, T + 1] {  # the signature
  # a comment on its own line
  %h = gelu(%x) {approximate = "none"} : f32[B*T, T+1]   # default attribute, left out
  %7 = clamp(%h) {min = 1, max = 2.50} : f32[ B*T , T + 1 ]
  return %7
}
"""
    assert round_trip(text) == """\
graph @g(%x: f32[B*T, T + 1], %y: f32[((H - 3) // 2) + 1]) -> f32[B*T, T + 1] {
  %h = gelu(%x) : f32[B*T, T + 1]
  %0 = clamp(%h) {min = 1.0, max = 2.5} : f32[B*T, T + 1]
  return %0
}
"""


def test_parsed_graph_keeps_names_types_and_locations():
    graph = parse(CANONICAL[0], "model.air")
    assert graph.name == "my model"
    assert [v.name for v in graph.inputs] == ["a b", "x"]
    assert graph.inputs[0].type == f32["B*T", 4]
    assert graph.params[0].name == "blocks.0.w"
    first, second = graph.nodes
    assert (first.name, first.outputs[0].name) == ("blocks.0.my op", "c d")
    assert second.outputs[0].name is None  # numbered results carry no name hint
    assert (str(first.loc), str(second.loc)) == ("model.air:3:3", "model.air:4:3")
    tuples = parse(CANONICAL[2])
    assert tuples.inputs[0].type == TupleType((f32[4], i64["B"]))


def test_dims_parse_to_canonical_expressions():
    graph = parse("graph @g(%x: f32[((H - 3) // 2) + 1, T*B]) -> f32[B*T] {\n  return %x\n}\n"
                  .replace("-> f32[B*T]", "-> f32[((H - 3) // 2) + 1, B*T]"))
    h, bt = graph.inputs[0].tensor_type.shape
    assert h == as_dim("(H - 3) // 2 + 1") and h.evaluate({"H": 11}) == 5
    assert bt == as_dim("B*T")


def test_float_list_attributes_round_trip():
    # No built-in op has a FLOATS attribute yet; check the spelling through its two halves.
    spec = attr(AttrKind.FLOATS)
    value = (1e-05, -math.inf, math.inf, -0.0, 2.0, 1e300)
    text = format_attr(value)
    assert text == "[1e-05, -inf, inf, -0.0, 2.0, 1e+300]"
    back = coerce_attr("op", "xs", spec, Parser(text)._attr_value())
    assert back == value and math.copysign(1.0, back[3]) == -1.0
    nan_back = coerce_attr("op", "xs", spec, Parser(format_attr((math.nan,)))._attr_value())
    assert math.isnan(nan_back[0])


def test_input_and_param_names_are_printed_as_they_are():
    # Regression: an unnamed-looking input once took the number a later parameter was named.
    b = GraphBuilder("g")
    x = b.input("0", f32[()])
    y = b.input("", f32[()])
    w = b.param("1", f32[()], np.ones((), np.float32))
    b.output(b.add(b.add(x, y), w))
    text = print_graph(b.build())
    assert text.splitlines()[:3] == [
        'graph @g(%0: f32[], %"": f32[]) -> f32[]',
        "    params(%1: f32[]) {",
        '  %2 = add(%0, %"") : f32[]',
    ]
    parsed = parse(text)
    assert [v.name for v in parsed.inputs + parsed.params] == ["0", "", "1"]
    assert print_graph(parsed) == text
