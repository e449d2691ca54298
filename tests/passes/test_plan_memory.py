"""plan-memory: liveness over the kernel schedule, in-place only where legal, arena offsets that never
overlap for buffers live together (checked geometrically and by running the graph out of one
arena: outputs must equal the interpreter's bit for bit), arena <= naive sum."""

import numpy as np
import pytest
from archir.passes.plan_memory import plan_memory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archir import GraphBuilder, f32
from archir.errors import PassError
from archir.interpreter import run, run_node
from archir.ir import Graph, Value
from archir.memory_plan import ALIGNMENT, MemoryPlan, MemoryPlanError, aligned, plan_of
from archir.pass_manager import run_pipeline
from tests.passes.cases import parse_air


def by_name(plan: MemoryPlan) -> dict[str, tuple[int, int, int]]:
    """name hint -> (first, last, offset) of each planned buffer."""
    return {b.value.name: (b.first, b.last, b.offset) for b in plan.buffers}


def value(graph: Graph, name: str) -> Value:
    for node in graph.nodes:
        for v in node.outputs:
            if v.name == name:
                return v
    raise KeyError(name)


# -- liveness ---------------------------------------------------------------------------------------
def test_liveness_from_first_write_to_last_read():
    g = parse_air("""
        graph @g(%x: f32[4, 8]) -> f32[4, 8] params(%w: f32[8, 8]) {
          %a = matmul(%x, %w) : f32[4, 8]
          %b = matmul(%a, %w) : f32[4, 8]
          %c = matmul(%b, %w) : f32[4, 8]
          %d = add(%a, %c) : f32[4, 8]
          return %d
        }
    """)
    plan = plan_memory(g)
    live = {name: (first, last) for name, (first, last, _) in by_name(plan).items()}
    assert live == {"a": (0, 3), "b": (1, 2), "c": (2, 3)}  # %d is the output: not in the arena
    # 128 bytes each, all three live at step 2: no reuse is possible
    assert plan.arena_bytes == plan.naive_bytes == plan.peak_live_bytes == 3 * 128
    assert plan.buffer_of(g.inputs[0]) is None and plan.buffer_of(g.params[0]) is None
    assert plan.buffer_of(g.outputs[0]) is None


def test_dead_buffers_are_reused():
    g = parse_air("""
        graph @g(%x: f32[4, 8]) -> f32[4, 8] params(%w: f32[8, 8]) {
          %a = matmul(%x, %w) : f32[4, 8]
          %b = matmul(%a, %w) : f32[4, 8]
          %c = matmul(%b, %w) : f32[4, 8]
          %d = matmul(%c, %w) : f32[4, 8]
          %e = matmul(%d, %w) : f32[4, 8]
          return %e
        }
    """)
    plan = plan_memory(g)
    got = by_name(plan)
    assert {k: v[:2] for k, v in got.items()} == {"a": (0, 1), "b": (1, 2), "c": (2, 3), "d": (3, 4)}
    # two slots of 128 bytes ping-pong: a, c and b, d share
    assert plan.arena_bytes == 256 and plan.naive_bytes == 512
    assert got["a"][2] == got["c"][2] != got["b"][2] == got["d"][2]


def test_a_view_keeps_its_storage_alive_and_a_returned_view_keeps_it_out_of_the_arena():
    g = parse_air("""
        graph @g(%x: f32[4, 8]) -> f32[32], f32[8, 4] params(%w: f32[8, 8]) {
          %a = matmul(%x, %w) : f32[4, 8]
          %r = reshape(%a) {shape = [32]} : f32[32]
          %b = matmul(%x, %w) : f32[4, 8]
          %c = matmul(%b, %w) : f32[4, 8]
          %s = exp(%r) : f32[32]
          %t = transpose(%c) {perm = [1, 0]} : f32[8, 4]
          return %s, %t
        }
    """)
    plan = plan_memory(g)
    live = {name: (first, last) for name, (first, last, _) in by_name(plan).items()}
    assert live == {"a": (0, 4), "b": (2, 3)}  # %r is read at step 4; %c is shown by output %t
    assert plan.buffer_of(value(g, "r")).value is value(g, "a")
    assert plan.schedule.is_kernel == [True, False, True, True, True, False]


def test_reshape_of_a_transposed_view_is_a_copy_kernel():
    g = parse_air("""
        graph @g(%x: f32[4, 8]) -> f32[32] {
          %a = exp(%x) : f32[4, 8]
          %t = transpose(%a) {perm = [1, 0]} : f32[8, 4]
          %r = reshape(%t) {shape = [32]} : f32[32]
          %s = exp(%r) : f32[32]
          return %s
        }
    """)
    plan = plan_memory(g)
    assert plan.schedule.is_kernel == [True, False, True, True]
    assert {b.value.name for b in plan.buffers} == {"a", "r"}


def test_values_captured_by_a_region_live_until_the_region_node():
    b = GraphBuilder("g")
    x = b.input("x", f32[5, 3, 4])
    h0 = b.input("h0", f32[3, 4])
    w = b.param("w", f32[4, 4])
    bias = b.exp(b.matmul(h0, w))  # read only inside the scan body
    other = b.tanh(h0)

    def step(h: Value, xt: Value) -> list[Value]:
        new = b.tanh(b.add(b.add(b.matmul(h, w), xt), bias))
        return [new, new]

    h_n, ys = b.scan(h0, x, num_carry=1, regions=[step])
    b.output(b.add(h_n, other), ys)
    g = b.build()
    plan = plan_memory(g)
    live = {buf.value.producer.op: (buf.first, buf.last) for buf in plan.buffers}
    assert live["exp"] == (1, 3)  # captured by the scan at step 3
    assert live["tanh"] == (2, 4)
    assert all(buf.value.producer in g.nodes for buf in plan.buffers)  # body values are not planned


# -- in-place ---------------------------------------------------------------------------------------
def test_elementwise_result_overwrites_an_input_that_dies_there():
    g = parse_air("""
        graph @g(%x: f32[4, 8]) -> f32[4, 8] params(%w: f32[8, 8]) {
          %a = matmul(%x, %w) : f32[4, 8]
          %b = exp(%a) : f32[4, 8]
          %c = add(%b, %a) : f32[4, 8]
          %d = matmul(%c, %w) : f32[4, 8]
          return %d
        }
    """)
    plan = plan_memory(g)
    source = {buf.value.name: buf.inplace_of.name if buf.inplace_of else None for buf in plan.buffers}
    # %b cannot overwrite %a (read again by %c); %c can overwrite %b (both die at %c, same type)
    assert source == {"a": None, "b": None, "c": "b"}
    assert plan.buffer_of(value(g, "c")).offset == plan.buffer_of(value(g, "b")).offset


@pytest.mark.parametrize("body, why", [
    ("%b = softmax(%a) : f32[8, 8]", "not elementwise"),
    ("%b = gt(%a, %x) : bool[8, 8]", "another dtype"),
    ("%b = add(%s, %x) : f32[8, 8]", "the dying input %s is broadcast"),
    ("%b = add(%a, %t) : f32[8, 8]", "%a is also read through a transposed view"),
    ("%b = add(%x, %x) : f32[8, 8]", "inputs are not in the arena"),
])
def test_no_inplace_where_illegal(body: str, why: str):
    g = parse_air(f"""
        graph @g(%x: f32[8, 8]) -> f32[8, 8] params(%w: f32[8, 8]) {{
          %a = matmul(%x, %w) : f32[8, 8]
          %s = sum(%a) {{axes = [1], keepdims = true}} : f32[8, 1]
          %t = transpose(%a) {{perm = [1, 0]}} : f32[8, 8]
          {body}
          %c = cast(%b) {{dtype = f32}} : f32[8, 8]
          return %c
        }}
    """)
    plan = plan_memory(g)
    assert not plan.inplace(), why


def test_the_same_template_allows_inplace_when_legal():
    g = parse_air("""
        graph @g(%x: f32[8, 8]) -> f32[8, 8] params(%w: f32[8, 8]) {
          %a = matmul(%x, %w) : f32[8, 8]
          %s = sum(%a) {axes = [1], keepdims = true} : f32[8, 1]
          %t = transpose(%a) {perm = [1, 0]} : f32[8, 8]
          %b = add(%a, %x) : f32[8, 8]
          %c = cast(%b) {dtype = f32} : f32[8, 8]
          return %c
        }
    """)
    (buf,) = plan_memory(g).inplace()
    assert buf.value.name == "b" and buf.inplace_of.name == "a"


def test_symbolic_sizes_need_bindings():
    g = parse_air("""
        graph @g(%x: f32[B, 8]) -> f32[B, 8] params(%w: f32[8, 8]) {
          %a = matmul(%x, %w) : f32[B, 8]
          %b = matmul(%a, %w) : f32[B, 8]
          return %b
        }
    """)
    with pytest.raises(MemoryPlanError, match=r"unbound symbols B"):
        plan_memory(g)
    plan = plan_memory(g, {"B": 3})
    (buf,) = plan.buffers
    assert str(buf.size_expr) == "32*B" and buf.size == 3 * 8 * 4
    assert plan.arena_bytes == aligned(96) == 128


def test_the_pass_leaves_the_plan_in_the_annotations_and_checks_its_options():
    src = """
        graph @g(%x: f32[B, 8]) -> f32[B, 8] {
          %a = exp(%x) : f32[B, 8]
          %b = exp(%a) : f32[B, 8]
          return %b
        }
    """
    g = run_pipeline(parse_air(src), "plan-memory{B=16}")
    plan = plan_of(g)
    assert plan is not None and plan.bindings == {"B": 16} and plan.buffers[0].size == 16 * 8 * 4
    with pytest.raises(PassError, match="not a non-negative integer"):
        run_pipeline(parse_air(src), "plan-memory{B=two}")
    with pytest.raises(MemoryPlanError, match="unbound symbols B"):
        run_pipeline(parse_air(src), "plan-memory")


# -- random DAGs: placement never overlaps, and running out of the arena gives the same outputs ----
ROWS = 4


@st.composite
def random_graphs(draw: st.DrawFn) -> Graph:
    b = GraphBuilder("random")
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = [b.input("x", f32[ROWS, draw(st.sampled_from([2, 4, 8]))])]

    def cols(v: Value) -> int:
        return v.tensor_type.shape[-1]

    def pick(pred=lambda v: True) -> Value | None:
        options = [v for v in values if pred(v)]
        return draw(st.sampled_from(options)) if options else None

    for i in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["unary", "binary", "matmul", "concat", "sum", "view", "softmax"]))
        a = pick(lambda v: v.tensor_type.rank == 2 and v.tensor_type.shape[0] == ROWS)
        if a is None or kind == "unary":
            values.append(getattr(b, draw(st.sampled_from(["tanh", "neg", "sigmoid"])))(pick()))
        elif kind == "binary":
            other = pick(lambda v, a=a: v.type == a.type or v.tensor_type.shape == (ROWS, 1))
            values.append(getattr(b, draw(st.sampled_from(["add", "mul", "sub"])))(a, other))
        elif kind == "matmul":
            n = draw(st.sampled_from([2, 4, 8, 16]))
            w = b.param(f"w{i}", f32[cols(a), n], rng.standard_normal((cols(a), n)).astype(np.float32))
            values.append(b.matmul(a, w))
        elif kind == "concat":
            other = pick(lambda v: v.tensor_type.rank == 2 and v.tensor_type.shape[0] == ROWS)
            values.append(b.concat(a, other, axis=1))
        elif kind == "sum":
            values.append(b.sum(a, axes=[1], keepdims=True))
        elif kind == "softmax":
            values.append(b.softmax(a, axis=-1))
        else:
            view = draw(st.sampled_from(["transpose", "reshape", "slice"]))
            if view == "transpose":
                values.append(b.transpose(a, perm=[1, 0]))
            elif view == "reshape":
                values.append(b.reshape(a, shape=[ROWS * cols(a)]))
            else:
                values.append(b.slice(a, axes=[1], starts=[0], ends=[max(1, cols(a) // 2)]))
    extra = [v for v in values[1:-1] if draw(st.booleans())] if draw(st.booleans()) else []
    b.output(values[-1], *extra[:2])
    return b.build()


def run_from_arena(graph: Graph, plan: MemoryPlan, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run kernel by kernel, keeping every arena value only as bytes at its planned offset; views
    are evaluated when read, from the bytes there at that moment."""
    arena = np.zeros(plan.arena_bytes, np.uint8)
    held: dict[Value, np.ndarray] = dict(zip(graph.inputs, inputs, strict=True))
    held.update({p: graph.param_data[p.name] for p in graph.params})

    def read(v: Value) -> np.ndarray:
        step = graph.nodes.index(v.producer) if v.producer is not None else -1
        if step >= 0 and not plan.schedule.is_kernel[step]:
            return run_node(v.producer, [read(u) for u in v.producer.inputs])[v.index]
        if v in held:
            return held[v]
        buf = plan.buffer_of(v)
        t = v.tensor_type
        raw = arena[buf.offset: buf.offset + buf.size]
        return raw.view(t.dtype.numpy).reshape(t.concrete_shape({})).copy()

    for step, node in enumerate(graph.nodes):
        if not plan.schedule.is_kernel[step]:
            continue
        results = run_node(node, [read(v) for v in node.inputs])
        for v, r in zip(node.outputs, results, strict=True):
            buf = plan.buffer_of(v)
            if buf is None:
                held[v] = r
            else:
                arena[buf.offset: buf.offset + buf.size] = np.ascontiguousarray(r).view(np.uint8).ravel()
    return [read(v) for v in graph.outputs]


def chain_home(plan: MemoryPlan, buf) -> Value:
    while buf.inplace_of is not None:
        buf = plan.buffer_of(buf.inplace_of)
    return buf.value


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(), st.integers(0, 1000))
def test_random_dags_place_live_buffers_apart_and_run_correctly_from_the_arena(graph, seed):
    plan = plan_memory(graph)
    for buf in plan.buffers:
        assert buf.offset % ALIGNMENT == 0
        assert buf.end <= plan.arena_bytes
    for i, p in enumerate(plan.buffers):
        for q in plan.buffers[i + 1:]:
            together = p.first <= q.last and q.first <= p.last
            apart = p.end <= q.offset or q.end <= p.offset
            if chain_home(plan, p) is chain_home(plan, q):
                assert p.offset == q.offset and (p.last <= q.first or q.last <= p.first)
            else:
                assert apart or not together, f"{p} and {q} overlap while both live"
    assert plan.peak_live_bytes <= plan.arena_bytes <= plan.naive_bytes
    assert plan.naive_bytes == sum(aligned(b.size) for b in plan.buffers)
    outputs = set(graph.outputs)
    for node, kernel in zip(graph.nodes, plan.schedule.is_kernel, strict=True):
        for v in node.outputs:
            planned = plan.buffer_of(v) is not None and plan.buffer_of(v).value is v
            assert planned == (kernel and v not in outputs and not _shown_by_output(plan, v, outputs))
    # tolerance 0: the same numpy ops on the same bytes
    inputs = [np.random.default_rng(seed).standard_normal(graph.inputs[0].tensor_type.concrete_shape({}))
              .astype(np.float32)]
    for got, want in zip(run_from_arena(graph, plan, inputs), run(graph, *inputs), strict=True):
        np.testing.assert_array_equal(got, want)


def _shown_by_output(plan: MemoryPlan, v: Value, outputs: set[Value]) -> bool:
    return any(plan.schedule.root_of(o) is v for o in outputs)
