"""The ``rt3d-tune`` command line.

Each subcommand lives in ``rt3d_tune/commands/<name>.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``; heavy imports (torch, ray) happen inside ``run`` so that
``--help`` stays instant. User mistakes (ConfigError) print one message and exit 2; a
traceback is shown only with ``--debug``.

``console_main`` is the ``rt3d-tune`` program (and ``python -m rt3d_tune``): ``main``,
then the process ends. A search ends with ``os._exit`` once its output is flushed, so
that Ray's teardown at interpreter exit, where a driver that joined a cluster has been
seen to crash (SIGSEGV) after a finished search, cannot replace the search's exit
status with its own.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from rt3d_tune import __version__
from rt3d_tune.errors import ConfigError

COMMANDS = ("search", "validate", "train", "schedule", "export", "report", "config")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rt3d-tune",
        description="Hyperparameter search for mmdetection3d-style runtime configs on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"rt3d-tune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"rt3d_tune.commands.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    module = importlib.import_module(f"rt3d_tune.commands.{args.command}")
    try:
        return int(module.run(args) or 0)
    except ConfigError as err:
        if args.debug:
            traceback.print_exc()
        print(f"rt3d-tune {args.command}: error: {err.format()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rt3d-tune {args.command}: interrupted", file=sys.stderr)
        return 130


def console_main(argv: Sequence[str] | None = None) -> None:
    """Run ``main`` as the process's whole life: exit with its status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command != "search":
        sys.exit(main(argv))
    faulthandler.enable()  # a crash inside Ray prints where it happened
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console_main()
