"""SemTalk: holistic co-speech motion generation with frame-level semantic emphasis."""

from semtalk.constants import AUDIO_SAMPLE_RATE, MOTION_FPS, __version__

__all__ = ["AUDIO_SAMPLE_RATE", "MOTION_FPS", "SemTalk", "__version__"]


def __getattr__(name: str) -> object:
    """``semtalk.SemTalk`` without importing torch for ``import semtalk``."""
    if name == "SemTalk":
        from semtalk.generation.engine import SemTalk

        return SemTalk
    raise AttributeError(f"module 'semtalk' has no attribute {name!r}")
