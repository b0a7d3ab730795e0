"""The synthetic speaker: a BEAT2-layout dataset with known rhythm and semantics."""
