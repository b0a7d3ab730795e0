"""Generation: a release folder, speech (+ words) in, motion, ψ and previews out.

>>> from semtalk.generation import SemTalk                             # doctest: +SKIP
>>> model = SemTalk.from_pretrained("semtalk-demo/release")            # doctest: +SKIP
"""

from __future__ import annotations

from semtalk.generation.emphasis import Emphasis
from semtalk.generation.engine import SemTalk, fuse_codes
from semtalk.generation.outputs import Generation
from semtalk.generation.speech import SpeechFeatures
from semtalk.release import Release

__all__ = ["Emphasis", "Generation", "Release", "SemTalk", "SpeechFeatures", "fuse_codes"]
