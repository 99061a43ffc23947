"""The ``medseg`` command.

Each group of subcommands lives in a module of :mod:`medseg_napari._cli` with a
``register(subparsers)`` function; every subcommand sets ``func(args) -> int``.
Imports are lazy (only the core, never Qt or napari, except for ``medseg view``)
so the command starts fast.

A :class:`~medseg_napari.core.errors.MedsegError` becomes one line on stderr and
exit code 2; nothing is written in that case.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from medseg_napari import __version__
from medseg_napari.core.errors import MedsegError

COMMAND_MODULES = (
    "medseg_napari._cli.volume",
    "medseg_napari._cli.classical",
    "medseg_napari._cli.evaluate",
    "medseg_napari._cli.model",
    "medseg_napari._cli.finetune",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="medseg",
        description="Segment 3D medical volumes: view, convert, threshold, grow, segment, evaluate, train.",
    )
    parser.add_argument("--version", action="version", version=f"medseg-napari {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``medseg`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MedsegError as error:
        print(f"medseg {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
