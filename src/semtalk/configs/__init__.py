"""Packaged YAML presets (values validated against the config dataclasses)."""
