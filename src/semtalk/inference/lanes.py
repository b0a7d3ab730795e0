"""Two CPU lanes for generation: independent inference jobs run beside each other.

A generation window holds independent work: the base model's body and face branches beside the
sparse model's body branch, then up to seven residual code heads and four part decoders. On a
CPU these are small matrix products (16-64 rows) and many small operators, which PyTorch's
intra-op threads split poorly: two threads make one job only about 1.4x faster. Two jobs on two
threads of one intra-op thread each run close to 2x. :class:`Lanes` runs jobs on the calling
thread and one worker thread, each with half the caller's intra-op threads, as a graph of
tasks that wait for each other's results (:meth:`Lanes.run_graph`): each lane takes the first
ready task as soon as it is free.

The jobs compute exactly what they compute on one thread, in the same order within a job, so
outputs do not depend on the lanes (tests compare both). Autograd and inference modes are
thread-local in PyTorch; the worker takes the caller's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch


def lanes_available(device: torch.device) -> bool:
    """True where two lanes pay: a CPU device with at least two intra-op threads."""
    return device.type == "cpu" and torch.get_num_threads() >= 2


@dataclass(frozen=True)
class Task:
    """One node of a task graph (:meth:`Lanes.run_graph`).

    Attributes:
        run: called with the results so far (``{name: value}``; those of ``after`` are there).
        after: names of the tasks whose results it needs.
    """

    run: Callable[[Mapping[str, Any]], Any]
    after: tuple[str, ...] = ()


class _Graph:
    """The shared state of one :meth:`Lanes.run_graph`: lanes take ready tasks in order."""

    def __init__(self, tasks: Mapping[str, Task]) -> None:
        unknown = sorted({f"{name} -> {dep}" for name, task in tasks.items()
                          for dep in task.after if dep not in tasks})
        if unknown:
            raise ValueError(f"tasks wait for unknown tasks: {', '.join(unknown)}")
        self.tasks = tasks
        self.pending = list(tasks)
        self.results: dict[str, Any] = {}
        self.running = 0
        self.error: BaseException | None = None
        self.ready = threading.Condition()

    def _take(self) -> str | None:
        """The first pending task whose inputs are done (None: nothing left for this lane)."""
        with self.ready:
            while self.pending and self.error is None:
                for name in self.pending:
                    if all(dep in self.results for dep in self.tasks[name].after):
                        self.pending.remove(name)
                        self.running += 1
                        return name
                if self.running == 0:
                    self.error = ValueError(f"tasks wait for each other in a cycle: "
                                            f"{', '.join(self.pending)}")
                    self.ready.notify_all()
                    break
                self.ready.wait()
            return None

    def work(self) -> None:
        """Run ready tasks until none are left or one failed."""
        while (name := self._take()) is not None:
            try:
                value = self.tasks[name].run(self.results)
            except BaseException as error:  # handed to the caller after both lanes stop
                with self.ready:
                    self.error = self.error or error
                    self.running -= 1
                    self.ready.notify_all()
                return
            with self.ready:
                self.results[name] = value
                self.running -= 1
                self.ready.notify_all()


def _work_in_mode(graph: _Graph, threads: int, inference: bool, grad: bool) -> None:
    torch.set_num_threads(threads)
    with torch.inference_mode(inference), torch.set_grad_enabled(grad):
        graph.work()


class Lanes:
    """A context in which :meth:`run_graph` spreads tasks over the caller's thread and a worker.

    While :meth:`run_graph` runs, the caller's intra-op thread count is halved (and restored
    when it returns); ``enabled`` False makes it run every task on the calling thread.
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

    def run_graph(self, tasks: Mapping[str, Task]) -> dict[str, Any]:
        """Run every task once its ``after`` tasks are done: ``{name: result}``.

        Each lane, when free, takes the first ready task in the mapping's order, so list the
        tasks on the longest path first. Without lanes the tasks run on the caller in that
        order. A task that fails stops the graph; its exception is raised after both lanes
        have stopped (a cycle or an unknown name raises ValueError).
        """
        graph = _Graph(tasks)
        if self._pool is None:
            graph.work()
        else:
            theirs = self._pool.submit(_work_in_mode, graph, self._lane_threads,
                                       torch.is_inference_mode_enabled(),
                                       torch.is_grad_enabled())
            torch.set_num_threads(self._lane_threads)
            try:
                graph.work()
            finally:
                theirs.result()  # the worker's own errors land in graph.error
                torch.set_num_threads(self._threads)
        if graph.error is not None:
            raise graph.error
        return graph.results
