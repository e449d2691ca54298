"""The verifier: one rejection per rule, each with its message and the location of the node."""

from collections.abc import Callable

import numpy as np
import pytest

from archir import Graph, GraphBuilder, Location, Node, Value, VerifyError, f32
from archir.parser import parse
from archir.verifier import verify

CHAIN = """graph @g(%x: f32[4], %y: f32[4]) -> f32[4] {
  %0 = add(%x, %y) : f32[4]
  %1 = exp(%0) : f32[4]
  return %1
}
"""

GELU = """graph @g(%x: f32[4]) -> f32[4] {
  %0 = gelu(%x) {approximate = "tanh"} : f32[4]
  %1 = clamp(%0) {min = 1.0} : f32[4]
  return %1
}
"""

SCAN = """graph @g(%c: f32[3], %xs: f32[5, 3]) -> f32[3], f32[5, 3] {
  %0 = exp(%c) : f32[3]
  %1, %2 = scan(%0, %xs) {num_carry = 1} : f32[3], f32[5, 3] body(%3: f32[3], %4: f32[3]) {
    %5 = add(%3, %4) : f32[3]
    yield %5, %5
  }
  %6 = neg(%1) : f32[3]
  return %6, %2
}
"""

PARAM = """graph @g(%x: f32[4]) -> f32[4]
    params(%w: f32[4]) {
  %0 = add(%x, %w) : f32[4]
  return %0
}
"""


def rejected(graph: Graph) -> VerifyError:
    with pytest.raises(VerifyError) as info:
        verify(graph)
    return info.value


def mutated(text: str, mutate: Callable[[Graph], None]) -> VerifyError:
    graph = parse(text, "model.air")
    verify(graph)  # each mutation starts from a graph that verifies
    mutate(graph)
    return rejected(graph)


def test_valid_graphs_verify():
    for text in (CHAIN, GELU, SCAN, PARAM):
        verify(parse(text))
    b = GraphBuilder("built")
    x = b.input("x", f32["B", 4])
    w = b.param("w", f32[4], np.ones(4, np.float32))
    b.output(b.mul(b.exp(x), w))
    verify(b.build())


def test_use_before_def():
    err = mutated(CHAIN, lambda g: g.nodes.reverse())
    assert str(err.loc) == "model.air:3:3"
    assert err.message == ("operand 0 (a result value of type f32[4]) of exp is used before it "
                           "is defined")
    assert str(err).startswith("model.air:3:3: error: operand 0")


def test_use_outside_the_defining_region():
    def leak(g: Graph) -> None:
        inner = g.nodes[1].regions[0].nodes[0].outputs[0]  # %5, defined in the scan body
        g.nodes[2].inputs[0] = inner

    err = mutated(SCAN, leak)
    assert str(err.loc) == "model.air:7:3"
    assert err.message == ("operand 0 (a result value of type f32[3]) of neg is used outside the "
                           "scope that defines it")


def test_region_argument_used_outside_its_region():
    def leak(g: Graph) -> None:
        g.nodes[2].inputs[0] = g.nodes[1].regions[0].args[0]

    err = mutated(SCAN, leak)
    assert str(err.loc) == "model.air:7:3"
    assert "of neg is used outside the scope that defines it" in err.message


def test_value_defined_twice():
    err = mutated(CHAIN, lambda g: g.nodes.append(g.nodes[0]))
    assert str(err.loc) == "model.air:2:3"
    assert err.message == "a result value of type f32[4] is defined more than once"
    err = mutated(CHAIN, lambda g: g.inputs.append(g.inputs[0]))
    assert err.message == "%x is defined more than once"
    assert str(err.loc) == "model.air:1:1"


def test_unknown_op():
    def rename(g: Graph) -> None:
        g.nodes[1].op = "expp"

    err = mutated(CHAIN, rename)
    assert str(err.loc) == "model.air:3:3"
    assert err.message == "unknown op 'expp'"


def test_bad_operand_count():
    err = mutated(CHAIN, lambda g: g.nodes[1].inputs.append(g.inputs[0]))
    assert str(err.loc) == "model.air:3:3"
    assert err.message == "exp takes 1 operands (x), got 2"


def test_invalid_attribute_value():
    def bad(g: Graph) -> None:
        g.nodes[0].attrs["approximate"] = "fast"

    err = mutated(GELU, bad)
    assert str(err.loc) == "model.air:2:3"
    assert err.message == "gelu attribute 'approximate' must be one of 'none', 'tanh', got 'fast'"
    assert err.node == "gelu(%x)"


def test_unknown_attribute():
    def extra(g: Graph) -> None:
        g.nodes[1].attrs["low"] = 0.5

    err = mutated(GELU, extra)
    assert str(err.loc) == "model.air:3:3"
    assert err.message == "clamp has no attribute 'low'"


@pytest.mark.parametrize(("index", "key", "message"), [
    (0, "approximate", "attribute 'approximate' of gelu is missing (its default 'none' must be filled in)"),
    (1, "max", "attribute 'max' of clamp is missing (its default None must be filled in)"),
])
def test_attribute_left_at_an_unfilled_default(index, key, message):
    err = mutated(GELU, lambda g: g.nodes[index].attrs.pop(key))
    assert err.message == message
    assert str(err.loc) == f"model.air:{index + 2}:3"


@pytest.mark.parametrize(("text", "key", "value", "line", "message"), [
    (GELU, "min", 1, 3, "attribute 'min' of clamp is not in canonical form (1 should be 1.0)"),
    (GELU.replace("gelu(%x) {approximate = \"tanh\"}", "cast(%x) {dtype = f32}"), "dtype", "f32", 2,
     "attribute 'dtype' of cast is not in canonical form ('f32' should be <DType.f32: 'f32'>)"),
    (GELU.replace("gelu(%x) {approximate = \"tanh\"}", "sum(%x) {axes = [0], keepdims = true}")
     .replace("f32[4]\n  %1", "f32[1]\n  %1").replace("-> f32[4]", "-> f32[1]")
     .replace("{min = 1.0} : f32[4]", "{min = 1.0} : f32[1]"), "axes", [0], 2,
     "attribute 'axes' of sum is not in canonical form ([0] should be (0,))"),
])
def test_non_canonical_attribute(text, key, value, line, message):
    def loosen(g: Graph) -> None:
        node = next(n for n in g.nodes if key in n.attrs)
        node.attrs[key] = value

    err = mutated(text, loosen)
    assert err.message == message
    assert str(err.loc) == f"model.air:{line}:3"


def test_declared_type_differs_from_inference():
    text = """graph @g(%x: f32[4], %y: f32[4]) -> f32[4, 5] {
  %0 = add(%x, %y) : f32[4, 5]
  return %0
}
"""
    err = rejected(parse(text, "model.air"))
    assert str(err).splitlines() == [
        "model.air:2:3: error: result 0 of add is declared f32[4, 5] but inference gives f32[4]",
        "  in: add(%x, %y)",
    ]


def test_declared_result_count_differs_from_inference():
    def extra_result(g: Graph) -> None:
        node = g.nodes[0]
        node.outputs.append(Value(f32[4], "result", None, node, 1))

    err = mutated(CHAIN, extra_result)
    assert str(err.loc) == "model.air:2:3"
    assert err.message == "add declares 2 results but inference gives 1"


def test_node_without_results():
    # It would print as a statement the parser cannot read, so the verifier refuses it.
    b = GraphBuilder("g")
    x = b.input("x", f32[3, 2])
    b.op("scan", x, num_carry=0, regions=[lambda row: []], loc=Location("model.py", 7))
    b.output(x)
    err = rejected(b.build())
    assert str(err).splitlines() == [
        "model.py:7: error: scan has no results; every node must produce a value",
        "  in: scan(%x)",
    ]


def test_inference_error_becomes_a_verify_error():
    text = """graph @g(%x: f32[4], %y: f32[3]) -> f32[4] {
  %0 = add(%x, %y) : f32[4]
  return %0
}
"""
    err = rejected(parse(text, "model.air"))
    assert str(err.loc) == "model.air:2:3"
    assert err.message == "shapes [4], [3] do not broadcast"


def test_wrong_region_count():
    err = mutated(SCAN, lambda g: g.nodes[1].regions.clear())
    assert str(err.loc) == "model.air:3:3"
    assert err.message == "scan must have 1 regions (body), has 0"
    err = mutated(SCAN, lambda g: g.nodes[0].regions.append(g.nodes[1].regions[0]))
    assert str(err.loc) == "model.air:2:3"
    assert err.message == "exp must have 0 regions (none), has 1"


def test_wrong_region_name():
    def rename(g: Graph) -> None:
        g.nodes[1].regions[0].name = "loop"

    err = mutated(SCAN, rename)
    assert str(err.loc) == "model.air:3:3"
    assert err.message == "region 0 of scan must be named 'body', not 'loop'"


def test_region_argument_types_wrong():
    text = SCAN.replace("body(%3: f32[3], %4: f32[3])", "body(%3: f32[3], %4: f32[5])")
    err = rejected(parse(text, "model.air"))
    assert str(err.loc) == "model.air:3:3"
    assert err.message == ("region 'body' of scan takes (f32[3], f32[5]) but must take "
                           "(f32[3], f32[3])")


def test_region_argument_must_be_a_region_arg():
    def retag(g: Graph) -> None:
        g.nodes[1].regions[0].args[0].kind = "input"

    err = mutated(SCAN, retag)
    assert str(err.loc) == "model.air:3:3"
    assert err.message == "region 'body' argument an input value of type f32[3] is not a region_arg"


def test_region_yield_types_wrong():
    text = SCAN.replace("    yield %5, %5", "    %9 = sum(%5) : f32[]\n    yield %9, %5")
    err = rejected(parse(text, "model.air"))
    assert str(err.loc) == "model.air:3:3"
    assert err.message == "scan body (carries) region yields (f32[]) but must yield (f32[3])"


def test_region_yields_a_value_from_another_scope():
    text = """graph @g(%p: bool[], %x: f32[4]) -> f32[4] {
  %0 = cond(%p, %x) : f32[4] then(%a: f32[4]) {
    %1 = exp(%a) : f32[4]
    yield %1
  } else(%b: f32[4]) {
    yield %b
  }
  return %0
}
"""

    def cross(g: Graph) -> None:
        then, other = g.nodes[0].regions
        other.results = [then.nodes[0].outputs[0]]

    err = mutated(text, cross)
    assert str(err.loc) == "model.air:2:3"
    assert err.message == ("region 'else' of cond yields a result value of type f32[4], which is "
                           "not defined in its scope")


def test_graph_output_not_defined():
    def dangling(g: Graph) -> None:
        g.outputs[0] = Value(f32[4], "result", "ghost")

    err = mutated(CHAIN, dangling)
    assert str(err).splitlines()[0] == \
        "model.air:1:1: error: graph output %ghost is not defined in the graph body"
    err = mutated(CHAIN, lambda g: g.outputs.clear())
    assert str(err).splitlines()[0] == "model.air:1:1: error: graph @g has no outputs"


def test_param_data_must_match_its_type():
    def wrong_data(g: Graph) -> None:
        g.param_data["w"] = np.ones(3, np.float32)

    err = mutated(PARAM, wrong_data)
    assert str(err).splitlines()[0] == \
        "model.air:1:1: error: parameter 'w' is declared f32[4] but its data is float32[3]"

    def wrong_dtype(g: Graph) -> None:
        g.param_data["w"] = np.ones(4, np.float64)

    assert str(mutated(PARAM, wrong_dtype)).splitlines()[0] == \
        "model.air:1:1: error: parameter 'w' is declared f32[4] but its data is float64[4]"


def test_param_data_that_matches_verifies():
    graph = parse(PARAM)
    graph.param_data["w"] = np.ones(4, np.float32)
    verify(graph)


@pytest.mark.parametrize("field", ["index", "producer", "kind"])
def test_result_must_point_back_at_its_node(field):
    def break_link(g: Graph) -> None:
        v = g.nodes[0].outputs[0]
        if field == "index":
            v.index = 1
        elif field == "producer":
            v.producer = g.nodes[1]
        else:
            v.kind = "input"

    err = mutated(CHAIN, break_link)
    assert str(err.loc) == "model.air:2:3"
    assert err.message == "result 0 of add does not point back at its node"


def test_nodes_without_a_location_still_name_the_node():
    b = GraphBuilder("g")
    x = b.input("x", f32[4])
    y = b.exp(x)
    b.output(y)
    graph = b.build()
    graph.nodes.insert(0, Node("neg", [y], {}, [Value(f32[4], "result")]))
    graph.nodes[0].outputs[0].producer = graph.nodes[0]
    err = rejected(graph)
    assert err.loc is None
    assert str(err).splitlines() == [
        "error: operand 0 (a result value of type f32[4]) of neg is used before it is defined",
        "  in: neg(%?)",
    ]
