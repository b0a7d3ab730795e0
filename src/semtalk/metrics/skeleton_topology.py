"""Edge topology of the skeleton-convolution FGD encoder: edges, neighbourhoods, pooling.

The encoder (:mod:`semtalk.metrics.fgd_encoder`) convolves over the *edges* (bones) of a
kinematic tree, the scheme of Aberman et al.'s skeleton-aware networks that EMAGE's
``VAESKConv`` uses (spec §8.1). This module computes, from a parents table alone:

- :func:`skeleton_edges`: one edge per joint. Edge ``j > 0`` is ``(parent(j), j)`` and carries
  joint ``j``'s 6D rotation; edge 0 is a virtual root edge ``(0, J)`` to an extra joint ``J``
  and carries the root joint's rotation. For SMPL-X: 55 edges.
- :func:`edge_neighbours`: for each edge, the edges within a graph distance (two edges are at
  distance 1 when they share a joint). A skeleton convolution lets edge ``e``'s output see
  only the input channels of these neighbours.
- :func:`pool_edges`: the mean-pooling step between layers. Edges are cut into chains (maximal
  runs of edges through joints of degree 2); each chain of even length is merged pairwise, an
  odd chain keeps its first edge alone and merges the rest pairwise. In the last layer each
  chain is pooled as a whole. For SMPL-X this gives 55 -> 35 -> 20 edges, after which every
  chain is a single edge and pooling no longer changes anything.

The traversal order (depth first from joint 0, children in edge order) decides the channel
order of every later layer, so it follows the official implementation's order exactly; the
released ``AESKConv_240_100.bin`` weights depend on it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

Edge = tuple[int, int]


def skeleton_edges(parents: Sequence[int]) -> tuple[Edge, ...]:
    """Edges ``[(0, J), (parents[1], 1), ..., (parents[J-1], J-1)]`` of a ``J``-joint tree.

    Raises:
        ValueError: if ``parents`` is not a tree rooted at joint 0 with parents before children.
    """
    num_joints = len(parents)
    if num_joints < 2:
        raise ValueError(f"a skeleton needs at least 2 joints, got {num_joints}")
    if parents[0] >= 0:
        raise ValueError(f"joint 0 must be the root (parent -1), got parent {parents[0]}")
    bad = [j for j in range(1, num_joints) if not 0 <= parents[j] < j]
    if bad:
        raise ValueError(f"parents must precede their children; joints {bad} do not")
    return ((0, num_joints), *((parents[j], j) for j in range(1, num_joints)))


def edge_neighbours(edges: Sequence[Edge], max_distance: int) -> tuple[tuple[int, ...], ...]:
    """For each edge, the sorted indices of edges at graph distance ``<= max_distance``.

    The distance between two edges is the number of steps between edges that share a joint
    (an edge is at distance 0 from itself).
    """
    by_joint: dict[int, list[int]] = {}
    for index, (a, b) in enumerate(edges):
        by_joint.setdefault(a, []).append(index)
        by_joint.setdefault(b, []).append(index)
    adjacent = [sorted({n for joint in edge for n in by_joint[joint]} - {index})
                for index, edge in enumerate(edges)]
    result = []
    for start in range(len(edges)):
        distance = {start: 0}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            if distance[current] == max_distance:
                continue
            for other in adjacent[current]:
                if other not in distance:
                    distance[other] = distance[current] + 1
                    queue.append(other)
        result.append(tuple(sorted(distance)))
    return tuple(result)


def edge_chains(edges: Sequence[Edge]) -> list[list[int]]:
    """Edge indices cut into chains, depth first from joint 0 with children in edge order.

    A chain ends at a leaf joint (degree 1) or just before a branching joint (degree > 2,
    joint 0 excepted); a new chain starts after each branching joint.
    """
    degree: dict[int, int] = {}
    for a, b in edges:
        degree[a] = degree.get(a, 0) + 1
        degree[b] = degree.get(b, 0) + 1
    children: dict[int, list[int]] = {}
    for index, (a, _) in enumerate(edges):
        children.setdefault(a, []).append(index)
    chains: list[list[int]] = []

    def walk(joint: int, chain: list[int]) -> None:
        if degree.get(joint, 0) > 2 and joint != 0:
            chains.append(chain)
            chain = []
        if degree.get(joint, 0) == 1:
            chains.append(chain)
            return
        for index in children.get(joint, []):
            walk(edges[index][1], [*chain, index])

    walk(0, [])
    return chains


def pool_edges(edges: Sequence[Edge], last: bool) -> tuple[list[list[int]], list[Edge]]:
    """Pooling groups (lists of input edge indices) and the pooled edges.

    Not ``last``: each chain's edges are merged in pairs, an odd chain's first edge stays
    alone; the merged edge runs from the first edge's parent joint to the second edge's child.
    ``last``: each chain is one group and no pooled edges are returned (nothing follows).
    """
    groups: list[list[int]] = []
    pooled: list[Edge] = []
    for chain in edge_chains(edges):
        if last:
            groups.append(chain)
            continue
        if len(chain) % 2:
            groups.append([chain[0]])
            pooled.append(edges[chain[0]])
            chain = chain[1:]
        for first, second in zip(chain[::2], chain[1::2], strict=True):
            groups.append([first, second])
            pooled.append((edges[first][0], edges[second][1]))
    return groups, pooled


@dataclass(frozen=True)
class LayerTopology:
    """The skeleton seen by one encoder layer.

    Attributes:
        edges: the layer's input edges.
        neighbours: per edge, the input edges its convolution reads.
        pool_groups: input edges averaged into each output edge; ``None`` when pooling would
            leave the edges unchanged (then the layer has no pooling step).
    """

    edges: tuple[Edge, ...]
    neighbours: tuple[tuple[int, ...], ...]
    pool_groups: tuple[tuple[int, ...], ...] | None

    @property
    def num_edges(self) -> int:
        """Input edges of the layer."""
        return len(self.edges)

    @property
    def num_output_edges(self) -> int:
        """Edges after the layer's pooling step."""
        return self.num_edges if self.pool_groups is None else len(self.pool_groups)


@lru_cache(maxsize=8)
def encoder_topology(parents: tuple[int, ...], num_layers: int,
                     max_distance: int) -> tuple[LayerTopology, ...]:
    """Per-layer topology of a ``num_layers`` skeleton encoder over ``parents``.

    The next layer's edges are the pooled edges even when the pooling step is skipped because
    it would not change the edge count (the official encoder does the same).
    """
    if num_layers < 1:
        raise ValueError(f"the encoder needs at least one layer, got {num_layers}")
    edges = skeleton_edges(parents)
    layers = []
    for index in range(num_layers):
        last = index == num_layers - 1
        groups, pooled = pool_edges(edges, last)
        layers.append(LayerTopology(
            edges=tuple(edges),
            neighbours=edge_neighbours(edges, max_distance),
            pool_groups=None if len(groups) == len(edges) else tuple(map(tuple, groups)),
        ))
        if not last:
            edges = tuple(pooled)
    return tuple(layers)
