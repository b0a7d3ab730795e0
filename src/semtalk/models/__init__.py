"""Assembled models, each built from its own config dataclass, with their output dataclasses."""
