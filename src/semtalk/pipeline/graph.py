"""A stage graph: named stages, what each needs, and the rules that make a rerun resume.

A :class:`Stage` says how to build its output from a context object (any type: the stages of
one graph agree on it) and, optionally,

* ``complete(ctx)``: a summary when the stage's output is already complete (the stage is then
  skipped and reported as reused), else ``None``;
* ``fingerprint(ctx)``: a digest of its output. The stage runs (a training stage resumes, which
  for a finished run is a no-op); it counts as reused when the digest did not change, and when
  it changed, the ``stale`` outputs of every stage that depends on it are removed, so they are
  rebuilt on the new output (a resumable run would refuse a changed input anyway);
* ``stale(ctx)``: the folders of this stage that a changed input makes stale.

:meth:`Graph.run` runs stages in dependency order (ties in definition order). Adding a stage
is one edit: ``graph.add(Stage("name", needs=("sparse",), run=...))``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

C = TypeVar("C")


@dataclass
class StepReport:
    """How one stage went: wall seconds, whether it only reused earlier work, a summary."""

    name: str
    reused: bool
    summary: str = ""
    seconds: float = 0.0
    """Wall-clock time."""
    cpu_seconds: float = 0.0
    """CPU time of this process and of the worker processes it waited for."""


@dataclass(frozen=True)
class Outcome:
    """What :attr:`Stage.run` returns: a summary, and whether it only reused earlier work
    (``None``: decided by the stage's fingerprint, else ``False``)."""

    summary: str = ""
    reused: bool | None = None


def _nothing(ctx: Any) -> Sequence[Path]:
    return ()


@dataclass(frozen=True)
class Stage(Generic[C]):
    """One stage of a pipeline (see the module docstring).

    Attributes:
        name: unique within its graph.
        run: builds (or resumes) the output.
        needs: names of the stages whose outputs it reads.
        title: one line for progress output (``str.format`` fields from the runner).
        complete: the resume rule checked before running.
        fingerprint: a digest of the output, compared across the run.
        stale: the folders a changed input makes stale.
    """

    name: str
    run: Callable[[C], Outcome]
    needs: tuple[str, ...] = ()
    title: str = ""
    complete: Callable[[C], str | None] | None = None
    fingerprint: Callable[[C], str | None] | None = None
    stale: Callable[[C], Sequence[Path]] = field(default=_nothing)


class GraphError(ValueError):
    """A graph that cannot be run: a duplicate name, an unknown need or a cycle."""


class Graph(Generic[C]):
    """Stages and their dependencies, defined once; see the module docstring."""

    def __init__(self, stages: Iterable[Stage[C]]) -> None:
        self.stages: dict[str, Stage[C]] = {}
        for stage in stages:
            if stage.name in self.stages:
                raise GraphError(f"two stages are named {stage.name!r}")
            self.stages[stage.name] = stage
        for stage in self.stages.values():
            unknown = [n for n in stage.needs if n not in self.stages]
            if unknown:
                raise GraphError(f"stage {stage.name!r} needs unknown stage(s) {unknown}")
        self._order = self._sorted()

    def _sorted(self) -> list[str]:
        done: list[str] = []
        visiting: list[str] = []

        def visit(name: str) -> None:
            if name in done:
                return
            if name in visiting:
                cycle = [*visiting[visiting.index(name):], name]
                raise GraphError(f"stages depend on each other: {' -> '.join(cycle)}")
            visiting.append(name)
            for need in self.stages[name].needs:
                visit(need)
            visiting.pop()
            done.append(name)

        for name in self.stages:
            visit(name)
        return done

    def __getitem__(self, name: str) -> Stage[C]:
        return self.stages[name]

    def __contains__(self, name: object) -> bool:
        return name in self.stages

    @property
    def names(self) -> list[str]:
        """Every stage in run order."""
        return list(self._order)

    def add(self, stage: Stage[C]) -> Graph[C]:
        """A new graph with ``stage`` added."""
        return Graph([*self.stages.values(), stage])

    def replace(self, name: str, **changes: Any) -> Graph[C]:
        """A new graph with fields of stage ``name`` changed (e.g. another ``run``)."""
        return Graph([replace(s, **changes) if s.name == name else s
                      for s in self.stages.values()])

    def upstream(self, name: str) -> list[str]:
        """The stages ``name`` needs, directly or not, in run order."""
        wanted = set()
        todo = list(self.stages[name].needs)
        while todo:
            need = todo.pop()
            if need not in wanted:
                wanted.add(need)
                todo += self.stages[need].needs
        return [n for n in self._order if n in wanted]

    def downstream(self, name: str) -> list[str]:
        """The stages that need ``name``, directly or not, in run order."""
        return [n for n in self._order if name in self.upstream(n)]

    def order(self, targets: Sequence[str] | None = None, *, needs: bool = True) -> list[str]:
        """The stages to run for ``targets`` (default: all), in run order; with
        ``needs=False`` only the targets themselves."""
        if targets is None:
            return self.names
        unknown = [t for t in targets if t not in self.stages]
        if unknown:
            raise GraphError(f"unknown stage(s) {unknown}; the stages are {self.names}")
        wanted = set(targets)
        if needs:
            for target in targets:
                wanted.update(self.upstream(target))
        return [n for n in self._order if n in wanted]

    def invalidate(self, ctx: C, name: str) -> list[Path]:
        """Remove the stale outputs of every stage downstream of ``name``; returns them."""
        removed = []
        for later in self.downstream(name):
            for path in self.stages[later].stale(ctx):
                if Path(path).exists():
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(Path(path))
        return removed

    def run_stage(self, ctx: C, name: str, *, track: bool = True) -> StepReport:
        """Run one stage under its resume rules (its needs are assumed done).

        ``track=False`` skips the fingerprint comparison (nothing downstream is removed; the
        stage counts as reused only when its ``run`` says so): for running a single stage on
        a folder whose other stages are the user's business (``semtalk train``)."""
        stage = self.stages[name]
        start, cpu = time.perf_counter(), cpu_seconds()
        if stage.complete is not None:
            summary = stage.complete(ctx)
            if summary is not None:
                return StepReport(name, True, summary, time.perf_counter() - start,
                                  cpu_seconds() - cpu)
        fingerprint = stage.fingerprint if track else None
        before = fingerprint(ctx) if fingerprint is not None else None
        outcome = stage.run(ctx)
        reused = outcome.reused
        if fingerprint is not None:
            unchanged = fingerprint(ctx) == before
            if not unchanged:
                self.invalidate(ctx, name)
            reused = unchanged if reused is None else reused
        return StepReport(name, bool(reused), outcome.summary, time.perf_counter() - start,
                          cpu_seconds() - cpu)

    def run(self, ctx: C, targets: Sequence[str] | None = None, *, needs: bool = True,
            track: bool = True, before: Callable[[int, int, Stage[C]], None] | None = None,
            after: Callable[[StepReport], None] | None = None) -> list[StepReport]:
        """Run the stages :meth:`order` gives, in order (see :meth:`run_stage` for ``track``);
        ``before(index, count, stage)`` and ``after(report)`` are called around each (for
        progress output)."""
        names = self.order(targets, needs=needs)
        reports = []
        for index, name in enumerate(names, start=1):
            if before is not None:
                before(index, len(names), self.stages[name])
            report = self.run_stage(ctx, name, track=track)
            reports.append(report)
            if after is not None:
                after(report)
        return reports


def cpu_seconds() -> float:
    """CPU time of this process and its finished children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system
