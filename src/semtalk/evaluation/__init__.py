"""Evaluation: generate a cache split with a release and score it (``semtalk evaluate``), and
the paper's ablation tables (``semtalk ablate``)."""
