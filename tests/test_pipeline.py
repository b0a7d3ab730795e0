"""The stage graph on tiny stages: order, dependencies, resume rules, adding a stage; and the
pipeline every command runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from semtalk.pipeline import PIPELINE, Graph, GraphError, Outcome, Stage, Workspace


@dataclass
class Ctx:
    """A folder per stage; a stage's output is one file in it."""

    root: Path
    ran: list[str] = field(default_factory=list)
    content: dict[str, str] = field(default_factory=dict)

    def out(self, name: str) -> Path:
        return self.root / name / "out.txt"


def writes(name: str, needs: tuple[str, ...] = (), **rules) -> Stage[Ctx]:
    """A stage that writes ``ctx.content[name]`` (default "v1") after checking its needs."""
    def run(ctx: Ctx) -> Outcome:
        missing = [n for n in needs if not ctx.out(n).is_file()]
        assert not missing, f"{name} ran before {missing}"
        ctx.ran.append(name)
        ctx.out(name).parent.mkdir(parents=True, exist_ok=True)
        ctx.out(name).write_text(ctx.content.get(name, "v1"))
        return Outcome(f"{name} written")
    return Stage(name, run, needs=needs, title=f"make {name}", **rules)


def complete(name: str):
    return lambda ctx: "complete" if ctx.out(name).is_file() else None


def fingerprint(name: str):
    return lambda ctx: ctx.out(name).read_text() if ctx.out(name).is_file() else None


def stale(name: str):
    return lambda ctx: [ctx.root / name]


def chain() -> Graph[Ctx]:
    """a -> b -> c, with d beside b (needs a); b and c resume by fingerprint."""
    return Graph([
        writes("a", complete=complete("a")),
        writes("b", ("a",), fingerprint=fingerprint("b"), stale=stale("b")),
        writes("c", ("b",), fingerprint=fingerprint("c"), stale=stale("c")),
        writes("d", ("a",), complete=complete("d")),
    ])


def test_order_follows_the_dependencies(tmp_path: Path) -> None:
    graph = Graph([writes("c", ("b",)), writes("b", ("a",)), writes("a")])  # any order
    assert graph.names == ["a", "b", "c"]
    ctx = Ctx(tmp_path)
    reports = graph.run(ctx)
    assert ctx.ran == ["a", "b", "c"] == [r.name for r in reports]
    assert not any(r.reused for r in reports) and reports[0].summary == "a written"
    assert chain().upstream("c") == ["a", "b"] and chain().downstream("b") == ["c"]
    assert chain().downstream("a") == ["b", "c", "d"]


def test_targets_run_what_they_need(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path)
    assert chain().order(["c"]) == ["a", "b", "c"]
    assert chain().order(["d", "b"]) == ["a", "b", "d"]
    assert chain().order(["c"], needs=False) == ["c"]
    chain().run(ctx, ["d"])
    assert ctx.ran == ["a", "d"]
    with pytest.raises(GraphError, match=r"unknown stage\(s\) \['e'\]"):
        chain().order(["e"])


def test_complete_stages_are_skipped_and_unchanged_ones_reused(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path)
    chain().run(ctx)
    again = Ctx(tmp_path)
    reports = chain().run(again)
    assert all(r.reused for r in reports)
    assert again.ran == ["b", "c"]  # a and d are complete; b, c resume (and change nothing)
    assert reports[0].summary == "complete"


def test_a_changed_output_makes_the_later_stages_stale(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path)
    chain().run(ctx)
    (tmp_path / "c" / "keep.txt").write_text("from the old b")
    changed = Ctx(tmp_path, content={"b": "v2"})
    reports = {r.name: r.reused for r in chain().run(changed)}
    assert reports == {"a": True, "b": False, "c": False, "d": True}
    assert not (tmp_path / "c" / "keep.txt").exists()  # c was removed, then rebuilt
    assert changed.out("c").read_text() == "v1"
    (tmp_path / "c" / "keep.txt").write_text("kept")
    quiet = Ctx(tmp_path, content={"b": "v3"})
    [report] = chain().run(quiet, ["b"], needs=False, track=False)  # someone else's folder
    assert quiet.ran == ["b"] and not report.reused
    assert (tmp_path / "c" / "keep.txt").exists()  # nothing downstream is touched


def test_adding_a_stage_is_one_edit(tmp_path: Path) -> None:
    graph = chain().add(writes("e", ("c", "d")))
    assert graph.names == ["a", "b", "c", "d", "e"]
    ctx = Ctx(tmp_path)
    graph.run(ctx, ["e"])
    assert ctx.ran == ["a", "b", "c", "d", "e"]
    swapped = graph.replace("e", run=lambda ctx: Outcome("swapped", reused=True))
    assert swapped.run_stage(ctx, "e").summary == "swapped"
    assert "e" in graph and "e" not in chain()


def test_bad_graphs_are_refused() -> None:
    with pytest.raises(GraphError, match="two stages are named 'a'"):
        Graph([writes("a"), writes("a")])
    with pytest.raises(GraphError, match=r"'b' needs unknown stage\(s\) \['z'\]"):
        Graph([writes("a"), writes("b", ("z",))])
    with pytest.raises(GraphError, match="depend on each other: a -> b -> a"):
        Graph([writes("a", ("b",)), writes("b", ("a",))])


def test_progress_hooks_see_every_stage(tmp_path: Path) -> None:
    seen: list[str] = []
    chain().run(Ctx(tmp_path), before=lambda i, n, s: seen.append(f"{i}/{n} {s.title}"),
                after=lambda r: seen.append(f"{r.name} {r.seconds >= 0}"))
    assert seen[:4] == ["1/4 make a", "a True", "2/4 make b", "b True"]


# ---------------------------------------------------------------------------- the pipeline
def test_the_pipeline_is_defined_once() -> None:
    from semtalk.pipeline.demo import DEMO_PIPELINE

    assert PIPELINE.names == ["synth", "prepare", "tokenizer", "base", "sparse", "release",
                              "fgd-encoder"]
    assert PIPELINE.upstream("release") == ["synth", "prepare", "tokenizer", "base", "sparse"]
    assert PIPELINE.upstream("fgd-encoder") == ["synth", "prepare"]
    assert DEMO_PIPELINE.order(["generate"]) == [
        "synth", "prepare", "tokenizer", "base", "sparse", "release", "generate"]
    ws = Workspace("cache", "runs")
    assert [str(p) for p in PIPELINE["base"].stale(ws)] == ["runs/base_run", "runs/base"]
    assert ws.tokenizer_release == Path("runs/tokenizer")
    assert Workspace("c", "r", tokenizer="t").tokenizer_release == Path("t")


def test_layers_do_not_import_upward() -> None:
    """training and generation never import each other; neither, nor evaluation, imports the
    pipeline or the CLI; the layers below them import none of those."""
    import re

    root = Path(__file__).resolve().parents[1] / "src" / "semtalk"
    forbidden = {
        "training": ("generation", "pipeline", "evaluation", "cli"),
        "generation": ("training", "pipeline", "evaluation", "cli"),
        "evaluation": ("training", "pipeline", "cli"),
        **{low: ("training", "generation", "pipeline", "evaluation", "cli")
           for low in ("body", "modules", "models", "losses", "data", "features", "metrics")},
    }
    found = []
    for package, targets in forbidden.items():
        pattern = re.compile(rf"^\s*(from|import) semtalk\.({'|'.join(targets)})\b", re.M)
        for path in sorted((root / package).rglob("*.py")):
            found += [f"{path.relative_to(root)}: {m.group(0).strip()}"
                      for m in pattern.finditer(path.read_text())]
    release = re.compile(r"^\s*(from|import) semtalk\.(training|generation|pipeline|evaluation"
                         r"|cli)\b", re.M)
    found += [f"release.py: {m.group(0).strip()}"
              for m in release.finditer((root / "release.py").read_text())]
    assert found == []
