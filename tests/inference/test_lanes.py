"""Two CPU lanes: task graphs keep their order, inputs, modes and errors; the thread count
comes back."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
import torch

from semtalk.inference.lanes import Lanes, Task, lanes_available


def _job(k: int) -> tuple[int, int, bool, bool, int]:
    return (k, threading.get_ident(), torch.is_inference_mode_enabled(),
            torch.is_grad_enabled(), torch.get_num_threads())


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def _independent(count: int) -> dict[str, Task]:
    return {str(k): Task(lambda done, k=k: (time.sleep(0.02), _job(k))[1]) for k in range(count)}


def test_graph_tasks_run_on_caller_and_worker_with_the_callers_mode(two_threads: None) -> None:
    caller = threading.get_ident()
    with torch.inference_mode(), Lanes(True) as lanes:
        done = lanes.run_graph(_independent(5))
    results = [done[str(k)] for k in range(5)]
    assert [r[0] for r in results] == list(range(5))
    assert {r[1] == caller for r in results} == {True, False}  # both lanes took tasks
    assert all(r[2] and not r[3] for r in results)  # the worker took the caller's modes
    assert all(r[4] == 1 for r in results)  # each lane: half of the two threads
    assert torch.get_num_threads() == 2


def test_grad_mode_reaches_the_worker(two_threads: None) -> None:
    with torch.no_grad(), Lanes(True) as lanes:
        results = list(lanes.run_graph(_independent(4)).values())
    assert [r[3] for r in results] == [False] * 4 and not any(r[2] for r in results)
    with Lanes(True) as lanes:
        results = list(lanes.run_graph(_independent(4)).values())
    assert [r[3] for r in results] == [True] * 4


def test_disabled_lanes_run_everything_on_the_caller(two_threads: None) -> None:
    caller = threading.get_ident()
    with Lanes(False) as lanes:
        results = list(lanes.run_graph(_independent(3)).values())
    assert all(r[1] == caller and r[4] == 2 for r in results)


def test_errors_surface_after_both_lanes_stop(two_threads: None) -> None:
    started, finished = threading.Event(), threading.Event()

    def slow(done: Mapping[str, Any]) -> int:
        started.set()
        time.sleep(0.2)
        finished.set()
        return 1

    def fail(done: Mapping[str, Any]) -> int:
        assert started.wait(10)  # the worker has taken the slow task
        raise RuntimeError("a task failed")

    with Lanes(True) as lanes:
        with pytest.raises(RuntimeError, match="a task failed"):
            lanes.run_graph({"fail": Task(fail), "slow": Task(slow)})
        assert finished.is_set()  # the worker was waited for
    assert torch.get_num_threads() == 2


def test_lanes_are_for_cpus_with_two_threads(two_threads: None) -> None:
    assert lanes_available(torch.device("cpu"))
    assert not lanes_available(torch.device("meta"))
    torch.set_num_threads(1)
    assert not lanes_available(torch.device("cpu"))


def _graph(log: list[str], fail: str | None = None) -> dict[str, Task]:
    """a -> (b, c) -> d, with e independent; each task logs itself and sums its inputs."""

    def task(name: str, value: int, *after: str) -> Task:
        def run(done: Mapping[str, Any]) -> int:
            if name == fail:
                raise RuntimeError(f"{name} failed")
            time.sleep(0.02)
            log.append(name)
            return value + sum(done[dep] for dep in after)

        return Task(run, after)

    return {"a": task("a", 1), "b": task("b", 10, "a"), "c": task("c", 100, "a"),
            "d": task("d", 1000, "b", "c"), "e": task("e", 5)}


@pytest.mark.parametrize("enabled", [False, True])
def test_task_graph_runs_each_task_after_its_inputs(two_threads: None, enabled: bool) -> None:
    log: list[str] = []
    with torch.inference_mode(), Lanes(enabled) as lanes:
        done = lanes.run_graph(_graph(log))
    assert done == {"a": 1, "b": 11, "c": 101, "d": 1112, "e": 5}
    assert sorted(log) == ["a", "b", "c", "d", "e"]
    assert log.index("a") < min(log.index("b"), log.index("c"))
    assert log.index("d") > max(log.index("b"), log.index("c"))
    if not enabled:  # one lane: the first ready task in the mapping's order
        assert log == ["a", "b", "c", "d", "e"]
    assert torch.get_num_threads() == 2


def test_task_graph_uses_both_lanes_with_their_modes(two_threads: None) -> None:
    seen: dict[str, tuple[int, bool, int]] = {}

    def task(name: str, *after: str) -> Task:
        def run(done: Mapping[str, Any]) -> None:
            time.sleep(0.05)
            seen[name] = (threading.get_ident(), torch.is_inference_mode_enabled(),
                          torch.get_num_threads())

        return Task(run, after)

    with torch.inference_mode(), Lanes(True) as lanes:
        lanes.run_graph({"x": task("x"), "y": task("y"), "z": task("z", "x", "y")})
    assert len({thread for thread, _, _ in seen.values()}) == 2  # x and y side by side
    assert all(mode and threads == 1 for _, mode, threads in seen.values())


@pytest.mark.parametrize("enabled", [False, True])
def test_task_graph_errors_stop_it_after_both_lanes(two_threads: None, enabled: bool) -> None:
    log: list[str] = []
    with Lanes(enabled) as lanes:
        with pytest.raises(RuntimeError, match="b failed"):
            lanes.run_graph(_graph(log, fail="b"))
        assert "d" not in log  # nothing after the failure ran
        with pytest.raises(ValueError, match="unknown tasks: b -> zz"):
            lanes.run_graph({"b": Task(lambda done: 0, ("zz",))})
        with pytest.raises(ValueError, match="cycle: p, q"):
            lanes.run_graph({"p": Task(lambda done: 0, ("q",)),
                             "q": Task(lambda done: 0, ("p",)), "r": Task(lambda done: 0)})
    assert torch.get_num_threads() == 2
