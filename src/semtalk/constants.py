"""Numbers every layer shares: the package version, the motion frame rate and the audio rate.

They live here, below every package, so that no module needs to import the ``semtalk`` package
itself (whose ``SemTalk`` attribute loads the generation engine, the top of the stack).
"""

__version__ = "0.1.0"
"""The package version (also ``semtalk.__version__``)."""

MOTION_FPS = 30
"""Motion frame rate of BEAT2 and of everything semtalk generates (frames per second)."""

AUDIO_SAMPLE_RATE = 16_000
"""Sample rate every audio signal is converted to on load (Hz)."""
