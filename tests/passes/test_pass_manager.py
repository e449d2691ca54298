"""The pass manager with the built-in passes: pipelines, errors, printing, timings, verification."""

import io
import uuid

import pytest

from archir import PassError, VerifyError, f64
from archir.ir import Graph
from archir.pass_manager import _PASSES, PassManager, parse_pipeline, register_pass, run_pipeline
from tests.passes.cases import parse_air

_SRC = """
    graph @g(%x: f32[B, 4]) -> f32[B, 4] {
      %one = full() {shape = [], value = 1.0} : f32[]
      %a = mul(%x, %one) : f32[B, 4]
      %b = exp(%a) : f32[B, 4]
      %c = exp(%a) : f32[B, 4]
      %d = add(%b, %c) : f32[B, 4]
      return %d
    }
    """


def test_pipeline_parsing_with_options_aliases_and_whitespace():
    assert parse_pipeline(" dce ,\n cse ") == [("dce", {}), ("cse", {})]
    assert parse_pipeline("canonicalize") == [
        ("simplify", {}), ("fold-constants", {}), ("cse", {}), ("dce", {})]
    assert parse_pipeline("specialize-shapes{ B = 4 , T=128 },dce") == [
        ("specialize-shapes", {"B": "4", "T": "128"}), ("dce", {})]
    assert parse_pipeline("cse,canonicalize,dce")[1:5] == parse_pipeline("canonicalize")


def test_unknown_pass_names_the_known_ones():
    with pytest.raises(PassError, match=r"unknown pass 'dcee'") as info:
        parse_pipeline("cse,dcee")
    assert info.value.hint is not None
    for name in ("dce", "cse", "fold-constants", "simplify", "specialize-shapes", "canonicalize"):
        assert name in info.value.hint


@pytest.mark.parametrize(("pipeline", "message"), [
    ("dce{x}", r"bad option 'x' for pass 'dce'"),
    ("dce{=3}", r"bad option '=3' for pass 'dce'"),
    ("dce{", r"bad pipeline step 'dce\{'"),
    ("dce cse", r"bad pipeline step 'dce cse'"),
])
def test_malformed_steps_and_options(pipeline, message):
    with pytest.raises(PassError, match=message):
        parse_pipeline(pipeline)


def test_an_option_a_pass_does_not_take_is_an_error():
    with pytest.raises(PassError, match=r"pass cse rejected its options \{'aggressive': '1'\}"):
        run_pipeline(parse_air(_SRC), "cse{aggressive=1}")


def test_errors_inside_a_pass_name_the_pass():
    with pytest.raises(PassError, match=r"in pass specialize-shapes: .*no symbol 'Q'"):
        run_pipeline(parse_air(_SRC), "specialize-shapes{Q=1}")


def test_canonicalize_end_to_end():
    out = run_pipeline(parse_air(_SRC), "canonicalize")
    assert [n.op for n in out.nodes] == ["exp", "add"]
    assert out.nodes[0].inputs == out.inputs


def test_print_after_one_pass():
    out = io.StringIO()
    PassManager("simplify,cse,dce", print_after={"cse"}, out=out).run(parse_air(_SRC))
    text = out.getvalue()
    assert text.count("# IR after") == 1
    assert text.startswith("# IR after cse (")
    # After cse the two exps are one; dce has not yet removed the dead full.
    assert text.count("exp(") == 1 and "full()" in text


def test_print_after_all_prints_each_pass_in_order():
    out = io.StringIO()
    PassManager("canonicalize,specialize-shapes{B=2}", print_after={"all"}, out=out).run(
        parse_air(_SRC))
    headers = [line.split(" (")[0] for line in out.getvalue().splitlines()
               if line.startswith("# IR after")]
    assert headers == ["# IR after simplify", "# IR after fold-constants", "# IR after cse",
                       "# IR after dce", "# IR after specialize-shapes"]
    assert "f32[2, 4]" in out.getvalue().split("# IR after specialize-shapes")[1]


def test_print_after_a_pass_not_in_the_pipeline_is_an_error():
    with pytest.raises(PassError, match=r"--after names passes not in the pipeline: fuse"):
        PassManager("dce", print_after={"fuse"}).run(parse_air(_SRC))


def test_timings_are_recorded_per_step():
    manager = PassManager("canonicalize,dce")
    manager.run(parse_air(_SRC))
    assert [name for name, _ in manager.timings] == ["simplify", "fold-constants", "cse", "dce",
                                                     "dce"]
    assert all(seconds >= 0.0 for _, seconds in manager.timings)
    report = manager.timing_report()
    assert "fold-constants" in report and report.splitlines()[-1].startswith("total")


def test_verify_after_each_pass_catches_a_broken_pass():
    name = f"test-corrupt-{uuid.uuid4().hex[:8]}"

    def corrupt(graph: Graph) -> Graph:
        graph.nodes[-1].outputs[0].type = f64["B", 4]  # declared type no longer what infers
        return graph

    register_pass(name)(corrupt)
    try:
        with pytest.raises(VerifyError, match=rf"after pass {name}: result 0 of add is declared "
                                              r"f64\[B, 4\] but inference gives f32\[B, 4\]"):
            run_pipeline(parse_air(_SRC), f"dce,{name}")
        # Without verification the broken graph goes through unnoticed.
        broken = PassManager(name, verify_each=False).run(parse_air(_SRC))
        assert str(broken.nodes[-1].outputs[0].type) == "f64[B, 4]"
    finally:
        del _PASSES[name]
