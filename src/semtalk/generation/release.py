"""The release a generator loads: :class:`~semtalk.release.Release`, defined with the rest of
the release contract in :mod:`semtalk.release` and re-exported here for the generation engine."""

from semtalk.release import Release, assemble_release

__all__ = ["Release", "assemble_release"]
