"""The ``cellblock`` command line: a thin layer over the library.

Each subsystem registers its own subcommands from a private ``_cli`` module; this module only
builds the parser, dispatches, and turns :class:`~cellblock.errors.CellblockError` into one clear
sentence on stderr and a documented exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from cellblock import __version__
from cellblock._terminal import note
from cellblock.errors import CellblockError

EXIT_USAGE = 64  # EX_USAGE, as the README's table says; argparse's own 2 is a program's exit(2)
# Commands whose usage status was documented before: `cellblock assess` exits 2 (docs/assess.md).
_DOCUMENTED_USAGE_STATUS = {"cellblock assess": 2}


class CliParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one sentence and exit 64.

    Subcommand parsers are made of this class too (argparse uses the parent's class).
    """

    def error(self, message: str) -> NoReturn:
        note(f"error: {message}; see `{self.prog} --help`", sys.stderr)
        sys.exit(_DOCUMENTED_USAGE_STATUS.get(self.prog, EXIT_USAGE))


def build_parser() -> argparse.ArgumentParser:
    from cellblock.assess import _cli as assess_cli
    from cellblock.audit import _cli as audit_cli
    from cellblock.policy import _cli as policy_cli
    from cellblock.sandbox import _cli as sandbox_cli
    from cellblock.service import _cli as service_cli
    from cellblock.session import _cli as session_cli

    parser = CliParser(
        prog="cellblock",
        description="Run untrusted Python in hardened, single-use containers.",
    )
    parser.add_argument("--version", action="version", version=f"cellblock {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sandbox_cli.register(sub)
    assess_cli.register(sub)
    audit_cli.register(sub)
    policy_cli.register(sub)
    service_cli.register(sub)
    session_cli.register(sub)
    return parser


def _tolerant_output() -> None:
    # A name or text the terminal's encoding cannot show is escaped rather than a traceback.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        if not sys.stdout.closed:  # a server (``mcp`` over stdio) may have closed it on its way out
            sys.stdout.flush()
    except CellblockError as exc:
        note(f"error: {exc}", sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        note("interrupted", sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`cellblock ... | head`): stop quietly, as a shell tool does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
