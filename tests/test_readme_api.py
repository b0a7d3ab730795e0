"""The README's generation snippet runs as written, on a tiny release and synthetic speech.

Convention: the python block under the heading ``### Python API: generation`` assigns the
release folder and the audio file on lines of their own, ``release = "..."`` and
``speech = "..."``; this test points them at a tiny untrained release and a spoken wav and runs
the block in a temporary working folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "### Python API: generation"
TRANSCRIPT = "so i never said that my dream job was easy"



def generation_snippet(text: str) -> str | None:
    """The first python code block after the heading (before the next heading), if any."""
    start = text.find(f"\n{HEADING}\n")
    if start < 0:
        return None
    section = re.split(r"\n#{1,3} ", text[start + len(HEADING) + 2:], maxsplit=1)[0]
    block = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return block.group(1) if block else None


def substitute(code: str, name: str, value: Path) -> str:
    pattern = rf"^{name} = .*$"
    if not re.search(pattern, code, flags=re.MULTILINE):
        raise AssertionError(f"the README snippet must assign `{name} = \"...\"` on a line of "
                             "its own (the test replaces that line)")
    return re.sub(pattern, f"{name} = {str(value)!r}", code, count=1, flags=re.MULTILINE)


def test_generation_snippet_runs(request: pytest.FixtureRequest, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pocketsphinx")
    code = generation_snippet(README.read_text(encoding="utf-8"))
    if code is None:
        pytest.skip(f"README.md has no python block under '{HEADING}' yet")
    tiny_release = request.getfixturevalue("tiny_release")  # built only when needed
    from semtalk.data.audio import resample, write_wav
    from semtalk.data.synthetic.tts import Prosody, synthesize

    spoken = synthesize(TRANSCRIPT.split(), Prosody())
    wav = write_wav(tmp_path / "input.wav", resample(spoken.audio, spoken.sample_rate, 16_000))
    code = substitute(substitute(code, "release", tiny_release), "speech", wav)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_snippet"}
    exec(compile(code, f"{README}:{HEADING}", "exec"), namespace)
    written = {p.name for p in tmp_path.iterdir()}
    for name in ("speech.npz", "speech.json", "speech_psi.png", "speech.mp4"):
        if f'"{name}"' in code:
            assert name in written, f"the snippet should have written {name}"


def test_snippet_extraction_and_substitution() -> None:
    text = ("# x\n\n### Python API: generation\n\nSome words.\n\n```python\n"
            "release = \"my-release\"\nspeech = \"a.wav\"\nprint(release)\n```\n\n"
            "## Next\n\n```python\nnot this\n```\n")
    code = generation_snippet(text)
    assert code is not None and code.startswith('release = "my-release"')
    assert "not this" not in code
    assert substitute(code, "release", Path("/r")).splitlines()[0] == "release = '/r'"
    assert generation_snippet("# x\n\n### Python API: generation\n\n## Next\n```python\nx\n```"
                              ) is None
    with pytest.raises(AssertionError, match="speech"):
        substitute("release = 1\n", "speech", Path("a"))
