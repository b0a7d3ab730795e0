"""The ``semtalk`` command: one module per subcommand, each a thin parse -> call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from semtalk.cli import (
    ablate,
    align,
    convert,
    demo,
    evaluate,
    export,
    features,
    generate,
    inspect,
    label,
    prepare,
    serve,
    synth,
    train,
)
from semtalk.config import ConfigError
from semtalk.constants import __version__
from semtalk.errors import DataError

SUBCOMMANDS = (synth, inspect, prepare, align, train, features, generate, evaluate, ablate, demo,
               convert, export, label, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semtalk",
        description="Holistic co-speech motion generation with frame-level semantic emphasis.")
    parser.add_argument("--version", action="version", version=f"semtalk {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``semtalk`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (DataError, ConfigError) as exc:
        print(f"semtalk {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # an optional extra is not installed
        print(f"semtalk {args.command}: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"semtalk {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
