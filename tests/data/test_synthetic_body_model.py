"""The stand-in SMPL-X file: a closed, outward-facing, human-sized surface on the built-in
skeleton that the smplx package loads."""

from __future__ import annotations

import numpy as np

from semtalk.body.parts import NUM_JOINTS
from semtalk.body.skeleton import BUILTIN_REST_JOINTS
from semtalk.data.synthetic.body_model import SMPLX_MIN_VERTICES, build_tube_body


def test_tube_body_is_closed_outward_and_human_sized() -> None:
    vertices, faces, joint = build_tube_body()
    assert len(vertices) >= SMPLX_MIN_VERTICES and 18_000 < len(faces) < 24_000
    np.testing.assert_array_equal(vertices[:NUM_JOINTS], BUILTIN_REST_JOINTS)
    assert (joint[:NUM_JOINTS] == np.arange(NUM_JOINTS)).all()
    # closed: every edge is shared by exactly two faces, once in each direction
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    directed = {tuple(e) for e in edges.tolist()}
    assert len(directed) == len(edges)
    assert all((b, a) in directed for a, b in directed)
    # outward: positive signed volume
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    assert np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6 > 0.05
    used = vertices[np.unique(faces)]
    height = used[:, 1].max() - used[:, 1].min()
    assert 1.65 < height < 1.85 and used[:, 0].max() > 0.85  # T-pose: hands out to the side
