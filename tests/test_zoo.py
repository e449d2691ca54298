"""Every zoo example against its independent reference, on each backend, at two symbolic sizes."""

import pytest

from archir import zoo
from archir.parser import parse
from archir.printer import print_graph
from archir.verifier import verify

ENTRIES = zoo.entries()
IDS = [e.name for e, _ in ENTRIES]


@pytest.mark.parametrize("backend", ["interp", "torch"])
@pytest.mark.parametrize(("entry", "path"), ENTRIES, ids=IDS)
def test_matches_reference(entry, path, backend):
    assert len(entry.sizes) >= 2, "each example is checked at two different symbolic sizes"
    for result in zoo.check(entry, path, backend):
        assert result.ok, f"{entry.name} on {backend} at {result.sizes}: max abs error " \
                          f"{result.max_abs_error:.3g} > {entry.tolerance}"


@pytest.mark.parametrize(("entry", "path"), ENTRIES, ids=IDS)
def test_graph_verifies_and_round_trips(entry, path):
    _, graph = zoo.build(entry, path)
    verify(graph)
    text = print_graph(graph)
    assert print_graph(parse(text)) == text
