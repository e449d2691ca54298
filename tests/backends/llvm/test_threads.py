"""Tests of the LLVM backend's thread pool: every index runs exactly once, on the threads asked for.

The task is a small hand-written IR function that counts visits per index and records which thread
made them; the reference is plain counting in numpy.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from archir.backends.llvm import threads
from archir.backends.llvm.ir_loops import I8_PTR, I32, I64, VOID, counted_loop, i32
from archir.backends.llvm.target import create_module
from llvmlite import ir

RUN_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def _counting_module() -> ir.Module:
    """`run(i32* counts, i64* who, i64 n)`: parallel_for over n; counts[i] += 1, who[i] = thread."""
    module = create_module("count_test")
    pthread_self = ir.Function(module, ir.FunctionType(I64, []), "pthread_self")
    ctx_type = ir.LiteralStructType([I32.as_pointer(), I64.as_pointer()])
    task = ir.Function(module, threads.TASK_TYPE, "count_task")
    b = ir.IRBuilder(task.append_basic_block())
    ctx = b.bitcast(task.args[0], ctx_type.as_pointer())
    counts = b.load(b.gep(ctx, [i32(0), i32(0)]))
    who = b.load(b.gep(ctx, [i32(0), i32(1)]))
    me = b.call(pthread_self, [])
    with counted_loop(b, task.args[1], task.args[2]) as i:
        b.atomic_rmw("add", b.gep(counts, [i]), i32(1), "monotonic")
        b.store(me, b.gep(who, [i]))
    b.ret_void()
    run = ir.Function(module, ir.FunctionType(VOID, [I32.as_pointer(), I64.as_pointer(), I64]), "run")
    b = ir.IRBuilder(run.append_basic_block())
    slot = b.alloca(ctx_type)
    b.store(run.args[0], b.gep(slot, [i32(0), i32(0)]))
    b.store(run.args[1], b.gep(slot, [i32(0), i32(1)]))
    b.call(threads.parallel_for_function(module), [task, b.bitcast(slot, I8_PTR), run.args[2]])
    b.ret_void()
    return module


def _nested_module() -> ir.Module:
    """`run_nested(i32* counts, i64 outer, i64 inner)`: each outer index runs an inner parallel_for
    over its own row of counts; the inner calls find the pool busy and run on their thread."""
    module = create_module("nested_test")
    ctx_type = ir.LiteralStructType([I32.as_pointer(), I64])
    parallel_for = threads.parallel_for_function(module)
    inner = ir.Function(module, threads.TASK_TYPE, "inner_task")
    b = ir.IRBuilder(inner.append_basic_block())
    row = b.bitcast(inner.args[0], I32.as_pointer())
    with counted_loop(b, inner.args[1], inner.args[2]) as i:
        b.atomic_rmw("add", b.gep(row, [i]), i32(1), "monotonic")
    b.ret_void()
    outer = ir.Function(module, threads.TASK_TYPE, "outer_task")
    b = ir.IRBuilder(outer.append_basic_block())
    ctx = b.bitcast(outer.args[0], ctx_type.as_pointer())
    counts, width = b.load(b.gep(ctx, [i32(0), i32(0)])), b.load(b.gep(ctx, [i32(0), i32(1)]))
    with counted_loop(b, outer.args[1], outer.args[2]) as o:
        row = b.bitcast(b.gep(counts, [b.mul(o, width)]), I8_PTR)
        b.call(parallel_for, [inner, row, width])
    b.ret_void()
    run = ir.Function(module, ir.FunctionType(VOID, [I32.as_pointer(), I64, I64]), "run_nested")
    b = ir.IRBuilder(run.append_basic_block())
    slot = b.alloca(ctx_type)
    b.store(run.args[0], b.gep(slot, [i32(0), i32(0)]))
    b.store(run.args[2], b.gep(slot, [i32(0), i32(1)]))
    b.call(parallel_for, [outer, b.bitcast(slot, I8_PTR), run.args[1]])
    b.ret_void()
    return module


@pytest.fixture(scope="module")
def run() -> Iterator[RUN_TYPE]:
    engine = threads.compile_module(_counting_module())
    before = threads.get_threads()
    yield RUN_TYPE(engine.get_function_address("run"))
    threads.set_threads(before)


def _call(run: RUN_TYPE, n: int, repeats: int = 1) -> tuple[np.ndarray, np.ndarray]:
    counts = np.zeros(max(n, 1), dtype=np.int32)
    who = np.zeros(max(n, 1), dtype=np.int64)
    for _ in range(repeats):
        run(counts.ctypes.data, who.ctypes.data, n)
    return counts[:n], who[:n]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1001])
@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_each_index_runs_exactly_once(run: RUN_TYPE, n: int, nthreads: int) -> None:
    threads.set_threads(nthreads)
    counts, who = _call(run, n)
    np.testing.assert_array_equal(counts, np.ones(n, dtype=np.int32))
    assert len(set(who.tolist())) <= min(n, nthreads)


def test_nested_parallel_for_runs_serially_inside(run: RUN_TYPE) -> None:
    engine = threads.compile_module(_nested_module())
    run_nested = RUN_TYPE(engine.get_function_address("run_nested"))
    threads.set_threads(2)
    counts = np.zeros((37, 53), dtype=np.int32)
    for _ in range(3):
        run_nested(counts.ctypes.data, 37, 53)
    np.testing.assert_array_equal(counts, np.full((37, 53), 3, dtype=np.int32))


def test_concurrent_callers_share_the_pool(run: RUN_TYPE) -> None:
    """Two Python threads calling at once (ctypes drops the GIL): one gets the pool, the other runs
    serially; both see every index exactly once."""
    threads.set_threads(2)
    results: list[np.ndarray] = []

    def worker() -> None:
        counts, _ = _call(run, 5000, repeats=200)
        results.append(counts)

    callers = [threading.Thread(target=worker) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(results) == 2
    for counts in results:
        np.testing.assert_array_equal(counts, np.full(5000, 200, dtype=np.int32))


def test_zero_and_negative_n_run_nothing(run: RUN_TYPE) -> None:
    counts = np.zeros(4, dtype=np.int32)
    who = np.zeros(4, dtype=np.int64)
    run(counts.ctypes.data, who.ctypes.data, 0)
    run(counts.ctypes.data, who.ctypes.data, -3)
    assert counts.sum() == 0


def test_repeated_calls_reuse_the_pool(run: RUN_TYPE) -> None:
    threads.set_threads(2)
    counts, _ = _call(run, 257, repeats=500)
    np.testing.assert_array_equal(counts, np.full(257, 500, dtype=np.int32))


def _threads_seen(run: RUN_TYPE, n: int, calls: int) -> set[int]:
    """Threads that ran any index over several calls (chunks are taken dynamically, so one call
    may by chance run entirely on the caller while the worker is still waking up)."""
    seen: set[int] = set()
    for _ in range(calls):
        _, who = _call(run, n)
        seen |= set(who.tolist())
    return seen


def test_set_threads_changes_the_split(run: RUN_TYPE) -> None:
    threads.set_threads(1)
    assert threads.get_threads() == 1
    assert len(_threads_seen(run, 200_000, 5)) == 1
    threads.set_threads(2)
    assert threads.get_threads() == 2
    assert len(_threads_seen(run, 200_000, 20)) == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_thread_count_is_an_error(bad: object) -> None:
    with pytest.raises(threads.ThreadCountError):
        threads.set_threads(bad)  # type: ignore[arg-type]


def test_env_variable_sets_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIR_THREADS", "3")
    assert threads._default_threads() == 3
    monkeypatch.setenv("ARCHIR_THREADS", "lots")
    with pytest.raises(threads.ThreadCountError):
        threads._default_threads()


def _idle_cpu(seconds: float) -> tuple[float, float]:
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    return time.process_time() - cpu_before, time.perf_counter() - wall_before


def test_idle_workers_nap_then_sleep(run: RUN_TYPE) -> None:
    """After a parallel loop the workers spin briefly, nap between polls for ~0.1 s (a few percent
    of a core), then block on a futex: the process goes quiet."""
    threads.set_threads(2)
    _call(run, 1000, repeats=10)
    time.sleep(0.01)  # past the spin phase, inside the naps
    cpu, wall = _idle_cpu(0.1)
    assert cpu < 0.25 * wall, f"napping workers used {cpu:.3f}s CPU in {wall:.3f}s"
    time.sleep(threads.NAPS * threads.NAP_US * 2e-6)  # past the naps, however slow each one was
    cpu, wall = _idle_cpu(0.3)
    assert cpu < 0.05 * wall, f"idle process used {cpu:.3f}s CPU in {wall:.3f}s"
