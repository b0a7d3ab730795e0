"""The ``semtalk`` command: one module per subcommand, each a thin parse -> call."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

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
from semtalk.fileio import describe_os_error

SUBCOMMANDS = (synth, inspect, prepare, align, train, features, generate, evaluate, ablate, demo,
               convert, export, label, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semtalk",
        description="Holistic co-speech motion generation with frame-level semantic emphasis.")
    parser.add_argument("--version", action="version", version=f"semtalk {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of a one-line message")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that the cleanup of an interrupt (``finally``,
    ``except BaseException``: temporary files, half-written outputs) runs for it too."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside: SIGTERM raises :class:`Terminated` (in the main thread; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``semtalk`` console script; returns the exit code.

    Errors of the input, the configuration or the environment (files, folders, disk) are one
    line on stderr and exit code 2 (3: an optional extra is missing); ``--debug`` shows their
    traceback instead. Ctrl-C exits with 130, SIGTERM with 143, after the same cleanup.
    """
    args = build_parser().parse_args(argv)
    try:
        with sigterm_as_interrupt():
            return int(args.run(args) or 0)
    except (DataError, ConfigError) as exc:
        return _fail(args, str(exc), exc, 2)
    except ImportError as exc:  # an optional extra is not installed
        return _fail(args, str(exc), exc, 3)
    except OSError as exc:  # the environment: permissions, a full disk, a missing folder
        return _fail(args, describe_os_error(exc), exc, 2)
    except Terminated:
        print(f"semtalk {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"semtalk {args.command}: interrupted", file=sys.stderr)
        return 130


def _fail(args: argparse.Namespace, message: str, exc: BaseException, code: int) -> int:
    """Print ``message`` as the command's error and return ``code``; re-raise with --debug."""
    if args.debug:
        raise exc
    print(f"semtalk {args.command}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
