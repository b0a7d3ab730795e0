"""SemTalk: holistic co-speech motion generation with frame-level semantic emphasis."""

__version__ = "0.1.0"

MOTION_FPS = 30
"""Motion frame rate of BEAT2 and of everything semtalk generates (frames per second)."""

AUDIO_SAMPLE_RATE = 16_000
"""Sample rate every audio signal is converted to on load (Hz)."""

__all__ = ["AUDIO_SAMPLE_RATE", "MOTION_FPS", "SemTalk", "__version__"]


def __getattr__(name: str) -> object:
    """``semtalk.SemTalk`` without importing torch for ``import semtalk``."""
    if name == "SemTalk":
        from semtalk.generation.engine import SemTalk

        return SemTalk
    raise AttributeError(f"module 'semtalk' has no attribute {name!r}")
