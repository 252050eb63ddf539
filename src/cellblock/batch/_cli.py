"""``cellblock run`` of several files or of a JSON Lines file of programs (a batch).

Exit status of a batch (docs/batch.md): 0 when every program ran and succeeded; 1 when every
program ran (or was judged) but at least one did not succeed (non-zero exit, timeout, out of
memory, blocked, not approved); 125 when at least one program could not be run at all; 64 for
bad input (nothing runs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cellblock._inputs import NotRegularFileError, read_regular_file
from cellblock._terminal import escape_text, note
from cellblock.batch.interface import BatchInputError, BatchItem, BatchItemError
from cellblock.errors import CellblockError

EXIT_BATCH_OK = 0
EXIT_BATCH_SOME_FAILED = 1
EXIT_BATCH_NOT_RUN = 125
MAX_JSONL_BYTES = 256 * 1024 * 1024


def add_batch_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jsonl",
        metavar="FILE",
        help="run every program of a JSON Lines file (one object per line: code, optional id "
        "and stdin); - reads it from stdin",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="programs in flight at once in a batch (default: the number of cores)",
    )
    parser.add_argument(
        "--shared-cell",
        action="store_true",
        help="opt-in: let one hardened cell run several programs of this batch in turn, each "
        "under its own uid with everything it left removed (recorded; see docs/batch.md)",
    )
    parser.add_argument(
        "--programs-per-cell",
        type=int,
        default=32,
        metavar="N",
        help="with --shared-cell: programs one cell runs before it is replaced (default 32)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar, even on a terminal"
    )


def is_batch(args: argparse.Namespace) -> bool:
    return bool(args.jsonl) or len(args.file) > 1


def _read(path: str, what: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return read_regular_file(path)
    except NotRegularFileError as exc:
        raise BatchInputError(
            f"cannot read {what} {path}: {exc.strerror}; give a regular file"
        ) from None
    except OSError as exc:
        raise BatchInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def parse_jsonl(data: bytes, name: str) -> list[BatchItem]:
    """One program per non-blank line; any malformed line refuses the whole file."""
    items: list[BatchItem] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchInputError(
            f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {number} of {name}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BatchInputError(
                f"{where} is not JSON ({exc.msg}); give one object per line"
            ) from None
        if not isinstance(obj, dict):
            raise BatchInputError(f'{where} is not a JSON object; give {{"code": ...}}')
        code = obj.get("code")
        if not isinstance(code, str):
            raise BatchInputError(f'{where} has no "code" string; every line needs one')
        item_id = obj.get("id")
        if item_id is not None and not isinstance(item_id, str | int):
            raise BatchInputError(f'{where}: "id" must be a string or an integer')
        stdin = obj.get("stdin")
        if stdin is not None and not isinstance(stdin, str):
            raise BatchInputError(f'{where}: "stdin" must be a string (UTF-8 text)')
        unknown = sorted(set(obj) - {"code", "id", "stdin"})
        if unknown:
            raise BatchInputError(
                f"{where} has unknown field(s) {', '.join(unknown)}; allowed: code, id, stdin"
            )
        items.append(
            BatchItem(
                code,
                stdin.encode("utf-8", "surrogateescape") if stdin is not None else None,
                None if item_id is None else str(item_id),
            )
        )
    if not items:
        raise BatchInputError(f"{name} holds no programs; give one JSON object per line")
    return items


def read_items(args: argparse.Namespace, stdin: bytes | None) -> list[BatchItem]:
    if args.jsonl:
        if args.file:
            raise BatchInputError("give program files or --jsonl FILE, not both")
        if args.stdin:
            raise BatchInputError('--stdin does not apply to --jsonl; put "stdin" in each line')
        data = _read(args.jsonl, "the JSON Lines file")
        if len(data) > MAX_JSONL_BYTES:
            raise BatchInputError(f"{args.jsonl} is over {MAX_JSONL_BYTES} bytes; split it")
        return parse_jsonl(data, args.jsonl)
    if "-" in args.file:
        raise BatchInputError("- (the program on stdin) can only be given alone, not in a batch")
    return [BatchItem(_read(path, "the program"), stdin, path) for path in args.file]


def cmd_run_batch(
    args: argparse.Namespace, *, stdin: bytes | None, overrides: dict[str, Any]
) -> int:
    from cellblock.pipeline import Approval, Pipeline
    from cellblock.sandbox._cli import _stderr_progress

    if args.concurrency is not None and args.concurrency < 1:
        raise BatchInputError("--concurrency must be at least 1")
    if args.programs_per_cell < 1:
        raise BatchInputError("--programs-per-cell must be at least 1")
    # a batch runs each program on the decided profile's own image, without packages or files
    for flag, value in {
        "--image": args.image,
        "--with": args.with_packages,
        "--requirements": args.requirements,
        "--wheelhouse": args.wheelhouse,
        "--file": args.files,
        "--collect": args.collect,
        "--artifacts": args.artifacts,
    }.items():
        if value:
            raise BatchInputError(
                f"{flag} cannot be used with a batch (several files or --jsonl); "
                "run such programs one at a time"
            )
    items = read_items(args, stdin)
    approver = None
    if args.approve:
        import getpass

        user = getpass.getuser()
        approver = lambda _req: Approval(True, by=f"cli --approve ({user})")  # noqa: E731
    with Pipeline(
        args.policy,
        progress=_stderr_progress,
        audit_dir=Path(args.audit_dir) if args.audit_dir else None,
        # many single-use cells: keep some started ahead (a shared cell needs none)
        use_pool=len(items) > 1 and not args.shared_cell,
    ) as pipeline:
        outcomes = pipeline.execute_many(
            items,
            concurrency=args.concurrency,
            progress=False if (args.no_progress or args.json) else None,
            cell_mode="shared" if args.shared_cell else "single",
            programs_per_cell=args.programs_per_cell,
            approver=approver,
            skip_assessment=args.no_assess,
            deep=True if args.deep else None,
            limits_override=overrides,
        )
    status = EXIT_BATCH_OK
    for index, (item, outcome) in enumerate(zip(items, outcomes, strict=True)):
        if isinstance(outcome, BatchItemError):
            status = EXIT_BATCH_NOT_RUN
            record: dict[str, Any] = {"status": "error", "error": str(outcome)}
        else:
            if outcome.status != "ok" and status == EXIT_BATCH_OK:
                status = EXIT_BATCH_SOME_FAILED
            record = outcome.to_dict()
        record = {"index": index, "id": item.id, **record}
        if args.json:
            print(json.dumps(record), flush=False)
        else:
            _show(index, len(items), item, outcome)
    sys.stdout.flush()
    return status


def _show(index: int, total: int, item: BatchItem, outcome: Any) -> None:
    from cellblock.sandbox._cli import _finding_line, print_result

    name = escape_text(item.id if item.id is not None else f"#{index}")
    if isinstance(outcome, BatchItemError):
        note(f"[{index + 1}/{total}] {name}: not run: {outcome}", sys.stderr)
        return
    note(f"[{index + 1}/{total}] {name}: {outcome.status}", sys.stderr)
    if outcome.execution is not None:
        print_result(outcome.execution, as_json=False)
    else:
        note(f"  {outcome.decision.reason}", sys.stderr)
        for finding in (outcome.assessment.findings if outcome.assessment else ())[:20]:
            print(escape_text(_finding_line(finding)), file=sys.stderr)


__all__ = ["CellblockError", "add_batch_flags", "cmd_run_batch", "is_batch", "parse_jsonl"]
