"""CPU inference speed-ups, kept apart from the models (which are plain PyTorch).

:func:`prepare_for_inference` swaps fast modules into a model's module tree
(:mod:`semtalk.inference.prepare`): packed products (:mod:`~semtalk.inference.packed`), the
decoder and encoder fast path (:mod:`~semtalk.inference.attention`), unfolded convolutions
(:mod:`~semtalk.inference.conv`), stacked code heads (:mod:`~semtalk.inference.heads`) and the
face branch's first-layer cache. Generation runs each window as a task graph
(:mod:`~semtalk.inference.window`) on two CPU lanes (:mod:`~semtalk.inference.lanes`).
The plain model is the reference: a prepared one computes the same up to float rounding.
"""

from semtalk.inference.prepare import is_prepared, prepare_for_inference, return_freed_memory

__all__ = ["is_prepared", "prepare_for_inference", "return_freed_memory"]
