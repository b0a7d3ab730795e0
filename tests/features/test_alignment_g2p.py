"""Pronunciations for words the CMU dictionary lacks: its parts, then letter-to-sound rules."""

from __future__ import annotations

import pytest

from semtalk.features.alignment import ARPABET, g2p
from semtalk.features.alignment.sphinx import make_decoder


def test_g2p_rules_give_valid_arpabet_that_pocketsphinx_accepts() -> None:
    pytest.importorskip("pocketsphinx")
    dec = make_decoder(language_model=False)
    made_up = ["blorptastic", "zorblax", "snurfle", "glimpsy", "kwame", "fbi", "xyzzy", "cuz",
               "shoppin", "weekendz"]
    for word in made_up:
        for phones in (g2p(word), g2p(word, dec.lookup_word)):
            assert phones and set(phones) <= ARPABET, (word, phones)
        if dec.lookup_word(word) is None:
            dec.add_word(word, " ".join(g2p(word, dec.lookup_word)), True)
        assert dec.lookup_word(word) == " ".join(g2p(word, dec.lookup_word))
    dec.set_align_text(" ".join(made_up))  # raises RuntimeError for any word it does not know


@pytest.mark.parametrize(("word", "phones"), [
    ("phone", "F OW N"), ("bright", "B R AY T"), ("knight", "N AY T"),
    ("quickly", "K W IH K L IY"), ("creature", "K R IY CH ER"), ("hoped", "HH OW P T"),
    ("cats", "K AE T S"), ("dogs", "D AA G Z"), ("bakes", "B EY K S"), ("boxes", "B AA K S IH Z"),
    ("station", "S T EY SH AH N"), ("blorptastic", "B L AO R P T AE S T IH K"),
    ("tv", "T IY V IY"), ("mp", "EH M P IY"),
])
def test_g2p_letter_to_sound_rules(word: str, phones: str) -> None:
    assert g2p(word) == phones.split()


def test_g2p_builds_unknown_words_from_dictionary_parts() -> None:
    lexicon = {"blog": "B L AO G", "sun": "S AH N", "bike": "B AY K", "match": "M AE CH",
               "happy": "HH AE P IY"}
    lookup = lexicon.get
    assert g2p("blogged", lookup) == ["B", "L", "AO", "G", "D"]
    assert g2p("blogs", lookup) == ["B", "L", "AO", "G", "Z"]
    assert g2p("matches", lookup) == ["M", "AE", "CH", "IH", "Z"]
    assert g2p("happiness", lookup) == ["HH", "AE", "P", "IY", "N", "AH", "S"]
    assert g2p("sunbike", lookup) == ["S", "AH", "N", "B", "AY", "K"]
    assert g2p("Sun", lookup) == ["S", "AH", "N"]
    with pytest.raises(ValueError, match="no letters"):
        g2p("42")
