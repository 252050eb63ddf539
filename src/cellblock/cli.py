"""The ``cellblock`` command line: a thin layer over the library.

Each subsystem registers its own subcommands from a private ``_cli`` module; this module only
builds the parser, dispatches, and turns :class:`~cellblock.errors.CellblockError` into one clear
sentence on stderr and a documented exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cellblock import __version__
from cellblock.errors import CellblockError


def build_parser() -> argparse.ArgumentParser:
    from cellblock.assess import _cli as assess_cli
    from cellblock.audit import _cli as audit_cli
    from cellblock.policy import _cli as policy_cli
    from cellblock.sandbox import _cli as sandbox_cli
    from cellblock.service import _cli as service_cli

    parser = argparse.ArgumentParser(
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CellblockError as exc:
        print(f"cellblock: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cellblock: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
