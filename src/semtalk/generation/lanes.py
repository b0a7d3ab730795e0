"""Two CPU lanes for generation: independent inference jobs run beside each other.

A generation window holds independent work: the base model's encoder beside the sparse model's
body branch, then up to seven residual code heads. On a CPU these are small matrix products
(16-64 rows) and many small operators, which PyTorch's intra-op threads split poorly: two
threads make one job only about 1.4x faster. Two jobs on two threads of one intra-op thread
each run close to 2x. :class:`Lanes` runs a list of jobs on the calling thread and one worker
thread, each with half the caller's intra-op threads, and gives the results back in order.

The jobs compute exactly what they compute on one thread, in the same order within a job, so
outputs do not depend on the lanes (tests compare both). Autograd and inference modes are
thread-local in PyTorch; the worker takes the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

import torch

T = TypeVar("T")


def lanes_available(device: torch.device) -> bool:
    """True where two lanes pay: a CPU device with at least two intra-op threads."""
    return device.type == "cpu" and torch.get_num_threads() >= 2


def _run_in_mode(jobs: Sequence[Callable[[], T]], threads: int, inference: bool,
                 grad: bool) -> list[T]:
    torch.set_num_threads(threads)
    with torch.inference_mode(inference), torch.set_grad_enabled(grad):
        return [job() for job in jobs]


class Lanes:
    """A context in which :meth:`run` spreads jobs over the caller's thread and a worker.

    While :meth:`run` runs two or more jobs, the caller's intra-op thread count is halved
    (and restored when it returns); ``enabled`` False makes :meth:`run` a plain loop on the
    calling thread.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._pool: ThreadPoolExecutor | None = None
        self._threads = 0
        self._lane_threads = 1

    def __enter__(self) -> Lanes:
        if self.enabled:
            self._threads = torch.get_num_threads()
            self._lane_threads = max(1, self._threads // 2)
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semtalk-lane")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def run(self, jobs: Sequence[Callable[[], T]]) -> list[T]:
        """``[job() for job in jobs]``; with lanes, the odd-numbered jobs (the 2nd, 4th, ...)
        run on the worker. Put the largest job first. The first exception is raised after
        both lanes have stopped."""
        if self._pool is None or len(jobs) < 2:
            return [job() for job in jobs]
        theirs = self._pool.submit(_run_in_mode, jobs[1::2], self._lane_threads,
                                   torch.is_inference_mode_enabled(), torch.is_grad_enabled())
        torch.set_num_threads(self._lane_threads)
        try:
            mine = [job() for job in jobs[0::2]]
        except BaseException:
            theirs.exception()  # let the worker finish before the caller moves on
            raise
        finally:
            torch.set_num_threads(self._threads)
        other = theirs.result()
        results: list[T] = []
        for k in range(len(jobs)):
            results.append(mine[k // 2] if k % 2 == 0 else other[k // 2])
        return results
