"""Motion export to formats other tools read (BVH)."""

from __future__ import annotations

from semtalk.export.bvh import BvhMotion, read_bvh, write_bvh

__all__ = ["BvhMotion", "read_bvh", "write_bvh"]
