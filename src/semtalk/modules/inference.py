"""The inference fast path's switch and its cache of derived weights.

Modules take a fast path in inference (eval mode, autograd off): decoder stacks with the memory's
keys and values computed up front, stacked code heads, convolutions as unfolded products, weights
pre-packed for the CPU's matrix kernels. Each computes what PyTorch's own layers compute, up to
float rounding; :func:`plain_inference` switches all of them off (the reference path the tests
compare with). The weights a fast path derives (stacked, folded, packed) are built once and kept
on the module (:func:`cached`) until a parameter changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T")

_fast_inference = True
_building = threading.RLock()


@contextmanager
def plain_inference() -> Iterator[None]:
    """Within the block every module runs PyTorch's own layers (the reference path)."""
    global _fast_inference
    previous, _fast_inference = _fast_inference, False
    try:
        yield
    finally:
        _fast_inference = previous


def uses_fast_path(module: nn.Module) -> bool:
    """True when ``module`` may take the inference fast path: eval mode, autograd off (e.g. under
    ``torch.inference_mode()`` or ``torch.no_grad()``) and not inside :func:`plain_inference`."""
    return _fast_inference and not module.training and not torch.is_grad_enabled()


def cached(owner: nn.Module, name: str, sources: Sequence[torch.Tensor],
           build: Callable[[], T]) -> T:
    """``build()``, kept on ``owner`` until one of ``sources`` (parameters) changes.

    A change is an in-place update (optimizer step, ``load_state_dict``: the tensor's version
    counter moves) or new storage (``.to(device)``, ``param.data = ...``). The value is a plain
    attribute, never part of the state dict.
    """
    key = tuple((t.data_ptr(), -1 if t.is_inference() else t._version, t.dtype, t.device)
                for t in sources)  # inference tensors have no version counter
    attribute = f"_fast_{name}"
    entry = owner.__dict__.get(attribute)
    if entry is None or entry[0] != key:
        with _building:  # two generation lanes asking at once build it once
            entry = owner.__dict__.get(attribute)
            if entry is None or entry[0] != key:
                with torch.inference_mode(False), torch.no_grad():
                    entry = (key, build())
                owner.__dict__[attribute] = entry
    return entry[1]
