"""``semtalk serve [--model RELEASE]``: the browser app, on this machine, offline.

Serves a page at http://HOST:PORT where speech is uploaded or recorded and turned into motion:
the preview video, the semantic score ψ with the words, an interactive 3D view of the animated
GLB, and downloads (npz, JSON, BVH; GLB/USD when the exporters are installed). The release
picker lists semtalk-demo/release (when it exists) and --model; any other folder can be typed.
Needs pip install 'semtalk[app]'.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO_RELEASE = Path("semtalk-demo/release")
"""What ``semtalk demo`` builds (the picker's default when it exists)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the browser app (speech in, video, ψ plot, 3D view, downloads)",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument("--model", "-m", type=Path, default=None, metavar="RELEASE",
                        help=f"release folder for the picker (default {DEMO_RELEASE}/ when it "
                             "exists)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--work", type=Path, default=None, metavar="DIR",
                        help="the only folder served: uploads and outputs (default: a new "
                             "temporary folder)")
    parser.add_argument("--hubert", type=Path, default=None, metavar="DIR",
                        help="local HuBERT model folder, for releases that use HuBERT features "
                             "(official: HuBERT-large)")
    parser.add_argument("--sentence-model", type=Path, default=None, metavar="DIR",
                        help="local sentence encoder folder, for releases that need one "
                             "(official: CLIP ViT-B/32)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(run=run)


def releases(model: Path | None) -> list[Path]:
    """The picker's releases: the demo's when it exists, then ``--model``."""
    found = [DEMO_RELEASE] if DEMO_RELEASE.is_dir() else []
    if model is not None and model not in found:
        found.append(model)
    return found


def run(args: argparse.Namespace) -> int:
    from semtalk.app import serve
    from semtalk.errors import DataError

    if args.model is not None and not args.model.is_dir():
        raise DataError(args.model, "release folder not found (it holds tokenizer/, base/ and "
                                    "sparse/)")
    print(f"semtalk serve: http://{args.host}:{args.port} (Ctrl+C stops it)", flush=True)
    serve(releases(args.model), host=args.host, port=args.port, work_dir=args.work,
          hubert=args.hubert, sentence_model=args.sentence_model, device=args.device)
    return 0
