"""Datasets: BEAT2-layout reader, file formats, and the synthetic speaker."""
