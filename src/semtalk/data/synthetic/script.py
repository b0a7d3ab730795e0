"""What the synthetic speaker says and how: sentences, keywords, and per-clip prosody.

Sentences come from templates whose slots draw from word lists. Some slots hold **keywords**
from a small lexicon; each keyword belongs to a semantic gesture class (see
:mod:`semtalk.data.synthetic.gestures`), so the text decides where semantic gestures happen and
the sem-gate has a true target. Each clip gets one emotion, which sets the voice's prosody and
the intensity of the motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semtalk.data.synthetic.tts import Prosody

KEYWORDS: dict[str, tuple[str, ...]] = {
    "self": ("i", "me", "my", "myself"),
    "listener": ("you", "your"),
    "large": ("big", "huge", "enormous", "everything"),
    "small": ("small", "tiny", "little"),
    "negation": ("no", "never", "nothing", "nobody"),
    "counting": ("one", "two", "three", "first", "second"),
    "rise": ("up", "higher", "more", "grow"),
    "think": ("think", "idea", "remember"),
}
"""Semantic gesture class -> the keywords that trigger it."""

KEYWORD_CLASS: dict[str, str] = {w: cls for cls, words in KEYWORDS.items() for w in words}

FUNCTION_WORDS = frozenset((
    "a", "an", "the", "and", "or", "but", "so", "to", "of", "in", "on", "at", "for", "with",
    "from", "that", "this", "it", "is", "was", "were", "be", "been", "are", "we", "they", "he",
    "she", "them", "his", "her", "its", "our", "their", "as", "if", "then", "than", "very",
    "just",
))
"""Unstressed words: beat gestures do not land on them."""

_SLOTS: dict[str, tuple[str, ...]] = {
    "subj": ("we", "they", "people", "my friend", "the team", "she", "he", "everyone"),
    "verb": ("built", "found", "wanted", "started", "changed", "bought", "watched", "made",
             "painted", "cooked", "opened", "visited"),
    "adj": ("old", "new", "red", "quiet", "busy", "simple", "strange", "famous", "warm"),
    "noun": ("house", "garden", "project", "city", "story", "market", "river", "school",
             "company", "kitchen", "festival", "picture"),
    "time": ("last summer", "every morning", "on sunday", "after work", "this year",
             "at night", "in the spring"),
    "adv": ("really", "slowly", "quickly", "finally", "almost", "honestly"),
    "size": KEYWORDS["large"][:3] + KEYWORDS["small"],
    "neg": ("never", "no", "nothing", "nobody"),
    "count": ("one", "two", "three"),
    "order": ("first", "second"),
    "rise": ("up", "higher", "more"),
}

TEMPLATES: tuple[str, ...] = (
    "{subj} {verb} the {adj} {noun} {time}",
    "{subj} {adv} {verb} a {adj} {noun}",
    "i {verb} a {size} {noun} {time}",
    "{subj} {verb} a {size} {noun}",
    "you {verb} the {noun} {time}",
    "did you see my {noun}",
    "{neg} wanted the {adj} {noun}",
    "we never {verb} the {noun} {time}",
    "there were {count} {adj} {noun}s",
    "the {order} {noun} was {adj}",
    "prices went {rise} {time}",
    "i think the {noun} was {adj}",
    "i remember the {adj} {noun}",
    "that idea changed everything",
    "{subj} wanted to grow the {noun}",
    "your {noun} is {adj} and {adj}",
    "it was a {adj} {noun} {time}",
    "{subj} {verb} the {noun} and the {noun}",
    "the {noun} near the {noun} was {adj}",
    "{subj} {adv} {verb} {count} {noun}s",
)


@dataclass(frozen=True)
class EmotionStyle:
    """How one emotion sounds and moves."""

    rate_wpm: tuple[int, int]
    pitch: tuple[int, int]
    pitch_range: tuple[int, int]
    volume: tuple[int, int]
    motion_scale: float
    """Multiplies beat-gesture amplitude."""
    smile: float
    """Offset of the smile-like expression component."""
    brow: float
    """Offset of the brow-raise expression component."""


EMOTION_STYLES: dict[str, EmotionStyle] = {
    "neutral": EmotionStyle((150, 175), (42, 55), (40, 60), (90, 110), 1.0, 0.0, 0.0),
    "happiness": EmotionStyle((170, 195), (55, 70), (60, 85), (100, 120), 1.2, 1.2, 0.5),
    "anger": EmotionStyle((175, 200), (35, 48), (55, 75), (120, 140), 1.4, -0.6, -0.8),
    "sadness": EmotionStyle((120, 140), (30, 40), (15, 30), (70, 90), 0.55, -0.8, 0.4),
    "surprise": EmotionStyle((160, 185), (60, 75), (70, 95), (100, 120), 1.15, 0.3, 1.2),
}
EMOTION_WEIGHTS: dict[str, float] = {
    "neutral": 0.5, "happiness": 0.15, "anger": 0.12, "sadness": 0.12, "surprise": 0.11,
}


@dataclass(frozen=True)
class Script:
    """The words of one clip, where pauses go, and how it is voiced."""

    words: tuple[str, ...]
    pause_after: dict[int, float]
    """Word index -> pause in seconds after it (sentence ends)."""
    emotion: str
    prosody: Prosody
    style: EmotionStyle


def _fill(template: str, rng: np.random.Generator) -> list[str]:
    words: list[str] = []
    for token in template.split():
        if token.startswith("{"):
            name, _, suffix = token[1:].partition("}")
            words.extend((rng.choice(_SLOTS[name]) + suffix).split())
        else:
            words.append(token)
    return words


def sample_emotion(rng: np.random.Generator) -> str:
    names = list(EMOTION_WEIGHTS)
    weights = np.array([EMOTION_WEIGHTS[n] for n in names])
    return str(rng.choice(names, p=weights / weights.sum()))


def extend_script(rng: np.random.Generator, script: Script, seconds: float) -> Script:
    """``script`` with whole sentences appended for about ``seconds`` more speech."""
    words = list(script.words)
    pauses = dict(script.pause_after)
    seconds_per_word = 60.0 / script.prosody.rate_wpm
    elapsed = 0.0
    while elapsed < seconds:
        sentence = _fill(str(rng.choice(TEMPLATES)), rng)
        words.extend(sentence)
        pause = float(rng.uniform(0.35, 0.9))
        pauses[len(words) - 1] = pause
        elapsed += len(sentence) * seconds_per_word + pause
    return Script(tuple(words), pauses, script.emotion, script.prosody, script.style)


def sample_script(rng: np.random.Generator, target_seconds: float, emotion: str) -> Script:
    """Sentences for about ``target_seconds`` of speech in the given emotion's voice."""
    style = EMOTION_STYLES[emotion]

    def pick(bounds: tuple[int, int]) -> int:
        return int(rng.integers(bounds[0], bounds[1] + 1))

    prosody = Prosody(rate_wpm=pick(style.rate_wpm), pitch=pick(style.pitch),
                      pitch_range=pick(style.pitch_range), volume=pick(style.volume))
    return extend_script(rng, Script((), {}, emotion, prosody, style), target_seconds)

