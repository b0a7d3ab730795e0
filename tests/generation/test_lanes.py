"""Two CPU lanes: jobs keep their order, modes and errors; the thread count comes back."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from semtalk.generation.lanes import Lanes, lanes_available


def _job(k: int) -> tuple[int, int, bool, bool, int]:
    return (k, threading.get_ident(), torch.is_inference_mode_enabled(),
            torch.is_grad_enabled(), torch.get_num_threads())


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_jobs_alternate_between_caller_and_worker_in_order(two_threads: None) -> None:
    caller = threading.get_ident()
    with torch.inference_mode(), Lanes(True) as lanes:
        results = lanes.run([lambda k=k: _job(k) for k in range(5)])
        single = lanes.run([lambda: _job(9)])
    assert [r[0] for r in results] == list(range(5))
    assert [r[1] == caller for r in results] == [True, False, True, False, True]
    assert all(r[2] and not r[3] for r in results)  # the worker took the caller's modes
    assert all(r[4] == 1 for r in results)  # each lane: half of the two threads
    assert single[0][1] == caller and single[0][4] == 2  # one job keeps all threads
    assert torch.get_num_threads() == 2


def test_grad_mode_reaches_the_worker(two_threads: None) -> None:
    with torch.no_grad(), Lanes(True) as lanes:
        results = lanes.run([lambda: _job(0), lambda: _job(1)])
    assert [r[3] for r in results] == [False, False] and not results[1][2]
    with Lanes(True) as lanes:
        results = lanes.run([lambda: _job(0), lambda: _job(1)])
    assert [r[3] for r in results] == [True, True]


def test_disabled_lanes_run_everything_on_the_caller(two_threads: None) -> None:
    caller = threading.get_ident()
    with Lanes(False) as lanes:
        results = lanes.run([lambda k=k: _job(k) for k in range(3)])
    assert all(r[1] == caller and r[4] == 2 for r in results)


def test_errors_surface_after_both_lanes_stop(two_threads: None) -> None:
    finished = threading.Event()

    def slow() -> int:
        time.sleep(0.2)
        finished.set()
        return 1

    def fail() -> int:
        raise RuntimeError("caller's job failed")

    with Lanes(True) as lanes:
        with pytest.raises(RuntimeError, match="caller's job failed"):
            lanes.run([fail, slow])
        assert finished.is_set()  # the worker was waited for
        with pytest.raises(ValueError, match="worker's job failed"):
            lanes.run([lambda: 0, lambda: (_ for _ in ()).throw(ValueError("worker's job failed"))])
    assert torch.get_num_threads() == 2


def test_lanes_are_for_cpus_with_two_threads(two_threads: None) -> None:
    assert lanes_available(torch.device("cpu"))
    assert not lanes_available(torch.device("meta"))
    torch.set_num_threads(1)
    assert not lanes_available(torch.device("cpu"))
