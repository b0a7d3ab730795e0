"""Evaluation: generate a cache split with a release and score it (``semtalk evaluate``), and
the metrics, scoring and reports of the paper's ablation tables (``semtalk ablate`` trains the
variants through :mod:`semtalk.pipeline.ablate`)."""
