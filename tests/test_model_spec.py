"""MODEL specs: `.air` files and `file.py:NAME`, with a clean ModelSpecError for each mistake."""

import textwrap
from pathlib import Path

import pytest

from archir import ArchirError, Graph, GraphBuilder, ModelSpecError, f32
from archir.model_spec import load_model
from archir.printer import print_graph
from archir.serialize import save

GRAPH_CODE = """
from archir import GraphBuilder, f32


def make(name="relu_net"):
    b = GraphBuilder(name)
    b.output(b.relu(b.input("x", f32["B", 4])))
    return b.build()
"""


def model_file(tmp_path, body, name="model.py"):
    path = tmp_path / name
    path.write_text(GRAPH_CODE + textwrap.dedent(body))
    return path


def test_air_file(tmp_path):
    b = GraphBuilder("g")
    b.output(b.exp(b.input("x", f32[3])))
    graph = b.build()
    save(graph, tmp_path / "g.air")
    assert print_graph(load_model(str(tmp_path / "g.air"))) == print_graph(graph)


@pytest.mark.parametrize("body, name, graph_name", [
    ("", "make", "relu_net"),  # a function with defaults only
    ("GRAPH = make('as_value')\n", "GRAPH", "as_value"),  # a Graph object
    ("""
     class Net:
         def to_graph(self):
             return make("from_model")
     net = Net()
     """, "net", "from_model"),  # an object with to_graph()
    ("""
     class Net:
         def __init__(self, width=4):
             self.width = width
         def to_graph(self):
             return make(f"class_{self.width}")
     """, "Net", "class_4"),  # a class: instantiated, then traced
    ("""
     class Net:
         def to_graph(self):
             return make("returned_model")
     def build():
         return Net()
     """, "build", "returned_model"),  # a function returning a model
])
def test_python_spec_forms(tmp_path, body, name, graph_name):
    path = model_file(tmp_path, body)
    graph = load_model(f"{path}:{name}")
    assert isinstance(graph, Graph) and graph.name == graph_name


def test_two_files_with_the_same_stem_stay_apart(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = model_file(tmp_path / "a", "G = make('first')\n")
    second = model_file(tmp_path / "b", "G = make('second')\n")
    assert load_model(f"{first}:G").name == "first"
    assert load_model(f"{second}:G").name == "second"


def test_model_file_imports_its_neighbours(tmp_path):
    (tmp_path / "helper_for_spec_test.py").write_text("NAME = 'neighbour'\n")
    path = model_file(tmp_path, "from helper_for_spec_test import NAME\nG = make(NAME)\n")
    assert load_model(f"{path}:G").name == "neighbour"


def spec_error(spec):
    with pytest.raises(ModelSpecError) as info:
        load_model(spec)
    assert info.value.hint, "every spec error carries a hint"
    return info.value


def test_missing_files(tmp_path):
    assert "no such file" in spec_error(str(tmp_path / "absent.air")).message
    assert "no such file" in spec_error(f"{tmp_path / 'absent.py'}:make").message


def test_spec_without_colon_or_with_wrong_suffix(tmp_path):
    path = model_file(tmp_path, "")
    err = spec_error(str(path))
    assert "names no graph" in err.message and f"{path}:NAME" in err.hint
    assert "file.air" in spec_error("model").hint or "model.air" in spec_error("model").hint
    assert ".py file before the colon" in spec_error(f"{tmp_path}/model.txt:make").message


def test_unknown_name_lists_public_callables(tmp_path):
    path = model_file(tmp_path, "def other():\n    pass\n\ndef _private():\n    pass\nCONST = 3\n")
    err = spec_error(f"{path}:missing")
    assert f"{path} has no 'missing'" in err.message
    assert err.hint == "it defines: make, other"  # not the imported GraphBuilder, _private, CONST


def test_required_arguments_and_wrong_types(tmp_path):
    path = model_file(tmp_path, """
        def needs(width, depth=2):
            return make()
        def number():
            return 42
        class BadModel:
            def to_graph(self):
                return "not a graph"
        CONST = 3
    """)
    assert "needs arguments (width)" in spec_error(f"{path}:needs").message
    assert "number() in" in spec_error(f"{path}:number").message
    assert "returned a value of type int" in spec_error(f"{path}:number").message
    assert "returned a value of type str, not a Graph" in spec_error(f"{path}:BadModel").message
    assert "is a value of type int, not a graph or model" in spec_error(f"{path}:CONST").message


def test_user_exceptions_point_at_the_user_line(tmp_path):
    path = model_file(tmp_path, """
        def broken():
            values = []
            return values[3]
    """)
    line = path.read_text().splitlines().index("    return values[3]") + 1
    err = spec_error(f"{path}:broken")
    assert str(err).startswith(f"{path}:{line}: error: IndexError: list index out of range")
    assert "calling broken()" in err.hint


def test_import_time_errors_point_at_the_user_line(tmp_path):
    path = model_file(tmp_path, "raise RuntimeError('no weights here')\n")
    line = len(path.read_text().splitlines())
    err = spec_error(f"{path}:make")
    assert str(err).startswith(f"{path}:{line}: error: RuntimeError: no weights here")
    bad = model_file(tmp_path, "def oops(:\n", name="bad.py")
    err = spec_error(f"{bad}:make")
    assert "syntax error" in err.message and err.loc.file == str(bad)


def test_archir_errors_from_user_code_pass_unchanged(tmp_path):
    path = model_file(tmp_path, """
        def mismatched():
            b = GraphBuilder("g")
            return b.add(b.input("x", f32[2]), b.input("y", f32[3]))
    """)
    with pytest.raises(ArchirError) as info:
        load_model(f"{path}:mismatched")
    assert not isinstance(info.value, ModelSpecError)
    assert "do not broadcast" in info.value.message
    assert Path(info.value.loc.file).resolve() == path.resolve()
