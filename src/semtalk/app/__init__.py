"""The browser app (``semtalk serve``): a gradio page over :mod:`semtalk.generation`.

:func:`build_app` returns the page (a ``gr.Blocks``), :func:`serve` serves it; gradio is
imported only when they are called (``pip install 'semtalk[app]'``). :mod:`.session` is the
work of one request, without gradio.
"""

from __future__ import annotations

from semtalk.app.page import AppConfig, build_app, serve

__all__ = ["AppConfig", "build_app", "serve"]
