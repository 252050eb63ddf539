"""CLI: ``cellblock session``: several files as the steps of one session, or JSON Lines.

Two forms, one session each:

* ``cellblock session load.py summary.py chart.py --file data.csv --artifacts out/``: every file
  is a step; output is printed live (escaped), a step's value is printed like a REPL's, figures
  and collected files are saved under ``--artifacts``. Stops at the first step that is not ok
  and exits with its status. ``--json`` prints one JSON object per step (JSON Lines).
* ``cellblock session --jsonl``: one request per line on stdin, one answer per line on stdout:
  ``{"op": "run", "code": "..."}``, ``{"op": "upload", "name": "d.csv", "data_base64": "..."}``,
  ``{"op": "download", "patterns": ["*.png"]}``, ``{"op": "list"}``, ``{"op": "close"}``.
  A bad request gets ``{"ok": false, "error": "..."}`` and the session goes on.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from cellblock._terminal import LiveOutput, escape_text, note
from cellblock.errors import CellblockError
from cellblock.sandbox._cli import (
    EXIT_BLOCKED,
    EXIT_INTERNAL,
    EXIT_NOT_APPROVED,
    EXIT_OOM,
    EXIT_TIMEOUT,
    _cli_approver,
    _stderr_progress,
    add_file_flags,
    add_limit_flags,
    file_specs,
    limit_overrides,
    read_program,
)
from cellblock.sandbox._sandbox import decode_source
from cellblock.sandbox.files import FileError, save_artifacts
from cellblock.session.interface import SessionLimits, StepResult

_STATUS_EXIT = {
    "ok": 0,
    "error": 1,
    "interrupted": EXIT_TIMEOUT,
    "timeout": EXIT_TIMEOUT,
    "oom": EXIT_OOM,
    "killed": EXIT_INTERNAL,
    "blocked": EXIT_BLOCKED,
    "refused": EXIT_BLOCKED,
    "not_approved": EXIT_NOT_APPROVED,
}


def register(sub: argparse._SubParsersAction[Any]) -> None:
    session = sub.add_parser(
        "session",
        help="run several steps in one persistent sandboxed interpreter",
        description="Run files as the steps of one session (state kept between them), or "
        "serve a JSON Lines protocol on stdin/stdout with --jsonl.",
    )
    session.add_argument("steps", nargs="*", metavar="FILE", help="step files, run in order")
    session.add_argument(
        "--jsonl", action="store_true", help="read requests from stdin, one JSON object per line"
    )
    session.add_argument("--json", action="store_true", help="one JSON object per step")
    add_limit_flags(session)
    session.add_argument("--policy", metavar="NAME|FILE", help="policy preset or file")
    session.add_argument("--image", metavar="NAME", help="image profile, e.g. data (pandas, ...)")
    session.add_argument("--approve", action="store_true", help="approve steps that need review")
    session.add_argument("--audit-dir", metavar="DIR", help="audit log directory")
    session.add_argument(
        "--idle-timeout", type=float, default=300.0, metavar="SECONDS", help="default 300"
    )
    session.add_argument(
        "--lifetime", type=float, default=3600.0, metavar="SECONDS", help="default 3600"
    )
    add_file_flags(session)
    session.set_defaults(func=cmd_session)


def cmd_session(args: argparse.Namespace) -> int:
    from cellblock.pipeline import Pipeline
    from cellblock.session import Session

    if bool(args.steps) == bool(args.jsonl):
        raise FileError("give step files, or --jsonl to read requests from stdin (not both)")
    steps = []
    for path in args.steps:
        data, name = read_program(path)
        steps.append((path, decode_source(data, name=name)))
    uploads = file_specs(args.files)
    limits = SessionLimits(
        step_timeout_s=args.timeout, idle_timeout_s=args.idle_timeout, max_lifetime_s=args.lifetime
    )
    overrides = limit_overrides(args)
    overrides.pop("timeout_s", None)  # the step timeout; the container has no deadline of its own
    human = not args.json and not args.jsonl
    live_out = _live(sys.stdout) if human else None
    live_err = _live(sys.stderr) if human else None
    with (
        Pipeline(
            args.policy,
            progress=_stderr_progress,
            audit_dir=Path(args.audit_dir) if args.audit_dir else None,
            use_pool=False,
        ) as pipeline,
        Session(
            pipeline=pipeline,
            limits=limits,
            limits_override=overrides,
            image=args.image,
            approver=_cli_approver(args, program_on_stdin=bool(args.jsonl)),
            on_stdout=live_out,
            on_stderr=live_err,
        ) as session,
    ):
        if uploads:
            session.upload(uploads)
        if args.jsonl:
            return _serve_jsonl(session)
        status = 0
        for path, code in steps:
            result = session.run(code)
            for live in (live_out, live_err):
                if live is not None:
                    live.finish(None)  # the step's unterminated last line, before its report
            _report_step(path, result, args)
            if result.status == "exit":
                status = result.exit_code or 0
            else:
                status = _STATUS_EXIT.get(result.status, EXIT_INTERNAL)
            if status:
                break  # like a script: the steps after a failed one are not run
        if args.collect and session.alive:
            got = session.download(args.collect)
            _save(
                list(got.artifacts), args, extra={"files_refused": got.to_dict()["files_refused"]}
            )
        return status


def _live(stream: TextIO) -> LiveOutput:
    # whole lines, so that a line that could pass for a note is judged as one (see _terminal)
    return LiveOutput(stream)


def _report_step(path: str, result: StepResult, args: argparse.Namespace) -> None:
    data = result.to_dict()
    if args.artifacts and result.artifacts:
        paths = save_artifacts(result.artifacts, Path(args.artifacts))
        for entry, saved in zip(data["artifacts"], paths, strict=True):
            entry["path"] = str(saved)
    if args.json:
        data["file"] = path
        print(json.dumps(data))
        sys.stdout.flush()
        return
    if result.stdout and not result.stdout.endswith("\n"):
        print()
    if result.value is not None:
        print(escape_text(result.value))
    for entry in data["artifacts"]:
        where = f" -> {entry['path']}" if entry.get("path") else ""
        note(
            escape_text(f"{path}: figure {entry['name']} ({entry['size']} bytes){where}"),
            sys.stderr,
        )
    if result.status != "ok":
        why = f": {result.reason}" if result.reason else ""
        note(escape_text(f"{path}: {result.status}{why}"), sys.stderr)


def _save(artifacts: list[Any], args: argparse.Namespace, *, extra: dict[str, Any]) -> None:
    paths = save_artifacts(artifacts, Path(args.artifacts)) if args.artifacts else []
    entries = [a.to_dict() for a in artifacts]
    for entry, saved in zip(entries, paths, strict=False):
        entry["path"] = str(saved)
    if args.json:
        print(json.dumps({"event": "download", "artifacts": entries, **extra}))
        return
    for entry in entries:
        where = f" -> {entry['path']}" if entry.get("path") else ""
        note(escape_text(f"artifact {entry['name']} ({entry['size']} bytes){where}"), sys.stderr)
    for item in extra.get("files_refused") or ():
        note(escape_text(f"not collected: {item['name']}: {item['reason']}"), sys.stderr)


def _serve_jsonl(session: Any) -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = _answer(session, line)
        print(json.dumps(answer))
        sys.stdout.flush()
        if answer.get("closed"):
            break
    return 0


def _answer(session: Any, line: str) -> dict[str, Any]:
    try:
        request = json.loads(line)
    except ValueError:
        return {"ok": False, "error": "the line is not JSON; send one JSON object per line"}
    if not isinstance(request, dict):
        return {"ok": False, "error": "send one JSON object per line"}
    op = request.get("op")
    try:
        if op == "run":
            code = request.get("code")
            if not isinstance(code, str):
                return {"ok": False, "error": "run needs a string field 'code'"}
            timeout = request.get("timeout")
            result = session.run(code, timeout=float(timeout) if timeout else None)
            return {"ok": True, "op": op, "result": result.to_dict(), "closed": not session.alive}
        if op == "upload":
            name, data = request.get("name"), request.get("data_base64")
            if not isinstance(name, str) or not isinstance(data, str):
                return {"ok": False, "error": "upload needs 'name' and 'data_base64' strings"}
            try:
                raw = base64.b64decode(data, validate=True)
            except binascii.Error:
                return {"ok": False, "error": "data_base64 is not valid base64"}
            return {"ok": True, "op": op, "files": session.upload({name: raw})}
        if op == "download":
            patterns = request.get("patterns")
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                return {"ok": False, "error": "download needs 'patterns', a list of strings"}
            return {"ok": True, "op": op, **session.download(patterns).to_dict()}
        if op == "list":
            return {"ok": True, "op": op, "files": [e.to_dict() for e in session.list_files()]}
        if op == "close":
            return {"ok": True, "op": op, "closed": True, "reason": session.close()}
    except CellblockError as exc:
        return {"ok": False, "op": op, "error": str(exc), "closed": not session.alive}
    return {"ok": False, "error": "unknown op; use run, upload, download, list or close"}
