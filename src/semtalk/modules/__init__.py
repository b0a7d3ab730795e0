"""Reusable neural-network blocks (quantizers, convolution stacks); no model assembly here."""
