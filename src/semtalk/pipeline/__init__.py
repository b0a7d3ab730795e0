"""The pipeline's stage graph, defined once (:data:`~semtalk.pipeline.stages.PIPELINE`), and
the commands that run it: ``semtalk demo`` (:mod:`semtalk.pipeline.demo`), ``semtalk train``
(:func:`~semtalk.pipeline.stages.train`) and ``semtalk ablate``
(:mod:`semtalk.pipeline.ablate`).

Layering: the pipeline may import training, generation, evaluation, features and data; none of
those imports the pipeline.
"""

from __future__ import annotations

from semtalk.pipeline.graph import Graph, GraphError, Outcome, Stage, StepReport
from semtalk.pipeline.stages import PIPELINE, Workspace, train

__all__ = ["PIPELINE", "Graph", "GraphError", "Outcome", "Stage", "StepReport", "Workspace",
           "train"]
