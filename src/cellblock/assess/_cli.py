"""``cellblock assess FILE|-``: print an assessment and exit by level.

Exit status: 0 below ``--fail-on``, 1 when the level reaches it, 2 for usage or input errors
(unreadable file; argparse's own usage errors also exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cellblock._inputs import NotRegularFileError, read_regular_file
from cellblock._terminal import escape_text
from cellblock.assess._config import AssessConfig
from cellblock.assess._core import Assessment, assess
from cellblock.assess._interface import AssessError, Level

EXIT_OK = 0
EXIT_FAIL_ON = 1
EXIT_USAGE = 2


class AssessInputError(AssessError):
    """The file to assess could not be read."""

    exit_code = EXIT_USAGE


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "assess",
        help="statically assess untrusted Python before running it",
        description="Assess Python code with an AST capability pass and Bandit, and with "
        "Semgrep on shipped rules when --deep is given or the fast path finds something risky.",
        epilog="exit status: 0 below --fail-on, 1 at or above it, 2 on usage or input errors",
    )
    p.add_argument("file", metavar="FILE", help="the Python file to assess, or - for stdin")
    p.add_argument("--format", choices=("table", "json", "sarif"), default="table",
                   help="output format (default: table)")
    deep = p.add_mutually_exclusive_group()
    deep.add_argument("--deep", dest="deep", action="store_const", const=True, default=None,
                      help="always run the deep path (Semgrep)")
    deep.add_argument("--no-deep", dest="deep", action="store_const", const=False,
                      help="never run the deep path")
    p.add_argument("--image", metavar="NAME", default=None,
                   help="image profile whose modules the dependency check assumes (base, data)")
    p.add_argument("--fail-on", type=_level_arg, default=Level.HIGH, metavar="LEVEL",
                   help="exit 1 when the level reaches LEVEL: low, medium, high or critical "
                   "(default: high)")
    p.set_defaults(func=run)


def _level_arg(value: str) -> Level:
    try:
        lv = Level.parse(value)
    except AssessError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if lv == Level.NONE:
        raise argparse.ArgumentTypeError("--fail-on none would fail every run; use low or above")
    return lv


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return read_regular_file(path)  # a FIFO or device would block or never end
    except NotRegularFileError as exc:
        raise AssessInputError(
            f"cannot read {path}: {exc.strerror}; give a regular file, or - for stdin"
        ) from None
    except OSError as exc:
        raise AssessInputError(f"cannot read {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    data = _read(args.file)
    name = "<stdin>" if args.file == "-" else args.file
    modules = None
    if args.image:  # the dependency check for the image the code will run on
        from cellblock.sandbox.profiles import find_profile, image_modules

        modules = image_modules(find_profile(args.image))
    result = assess(
        data, config=AssessConfig(), deep=args.deep, filename=name, available_modules=modules
    )
    if args.format == "json":
        print(result.to_json())
    elif args.format == "sarif":
        print(json.dumps(result.to_sarif(), indent=2))
    else:
        print(escape_text(render_table(result)))  # findings may quote the code: never obeyed
    return EXIT_FAIL_ON if result.level >= args.fail_on else EXIT_OK


def render_table(a: Assessment) -> str:
    lines = [f"{a.filename}: level {a.level.value.upper()}  "
             f"({len(a.findings)} findings; sha256 {a.code_sha256[:12]})"]
    if a.findings:
        rows = [("SEVERITY", "LINE", "TOOL", "CATEGORY", "RULE", "MESSAGE")]
        for f in a.findings:
            rows.append((f.severity.value, str(f.line), f.tool, f.category, f.rule_id,
                         f.message if len(f.message) <= 90 else f.message[:87] + "..."))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            lines.append("  " + "  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:5]))
                         + "  " + r[5])
    timing = ", ".join(f"{k} {v:.1f} ms" for k, v in a.timings_ms.items())
    lines.append(f"analyzers: {', '.join(a.analyzers_run) or 'none'}"
                 f"{' (deep)' if a.deep_ran else ''}; {timing}")
    for name, err in a.errors.items():
        lines.append(f"error: {name}: {err}")
    if a.dependencies or a.missing_dependencies:
        lines.append(f"third-party imports: {', '.join(a.dependencies) or 'none'}; "
                     f"missing in the sandbox image: {', '.join(a.missing_dependencies) or 'none'}")
    return "\n".join(lines)
