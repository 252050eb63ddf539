"""CLI: ``cellblock run``, ``image build|info``, ``gc`` and ``doctor``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cellblock._inputs import NotRegularFileError, read_regular_file
from cellblock._terminal import LiveOutput, escape_text, note, program_output
from cellblock.batch import _cli as batch_cli
from cellblock.errors import CellblockError
from cellblock.sandbox._sandbox import decode_source
from cellblock.sandbox.errors import SourceDecodeError
from cellblock.sandbox.files import FileError, input_files, save_artifacts
from cellblock.sandbox.interface import ExecutionResult, Limits, Status, parse_size

# Exit statuses of `cellblock run` other than the program's own (documented in the README).
EXIT_TIMEOUT = 124
EXIT_INTERNAL = 125
EXIT_BLOCKED = 126
EXIT_NOT_APPROVED = 127
EXIT_OOM = 123


def register(sub: argparse._SubParsersAction[Any]) -> None:
    run = sub.add_parser("run", help="run a Python program in a hardened single-use sandbox")
    run.add_argument(
        "file",
        nargs="*",
        help="the program, or - to read it from stdin; several files run as a batch",
    )
    add_limit_flags(run)
    run.add_argument(
        "--stdin", metavar="FILE", help="a file whose bytes become the program's stdin"
    )
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.add_argument(
        "--policy", metavar="NAME|FILE", help="policy preset or file (default: lookup)"
    )
    run.add_argument(
        "--approve", action="store_true", help="approve in advance if review is needed"
    )
    run.add_argument(
        "--no-assess",
        action="store_true",
        help="skip the assessment (only when the policy allows it; recorded)",
    )
    run.add_argument("--deep", action="store_true", help="always run the deep (Semgrep) analysis")
    run.add_argument(
        "--with",
        dest="with_packages",
        action="append",
        default=[],
        metavar="SPEC",
        help="a package for this run, e.g. tabulate==0.10.0 (repeatable; resolved on the host, "
        "scanned, checked against the policy's packages: rules)",
    )
    run.add_argument(
        "--requirements", metavar="FILE", help="packages for this run from a requirements file"
    )
    run.add_argument(
        "--wheelhouse", metavar="DIR", help="take packages from this directory of wheels only"
    )
    run.add_argument(
        "--image",
        metavar="NAME",
        help="image profile to run on (base, data, or one the policy declares); the policy "
        "profile must permit it",
    )
    run.add_argument("--audit-dir", metavar="DIR", help="audit log directory")
    add_file_flags(run)
    batch_cli.add_batch_flags(run)
    # --session: the files are the steps of one session, run by ``cellblock session``'s code
    run.add_argument(
        "--session",
        action="store_true",
        help="run the files as the steps of one session (state kept between them); "
        "like cellblock session FILE...",
    )
    run.set_defaults(func=cmd_run)

    image = sub.add_parser("image", help="build or inspect the sandbox image")
    isub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    build = isub.add_parser("build", help="build the sandbox image (offline capable; idempotent)")
    build.add_argument("--force", action="store_true", help="rebuild even if the image is current")
    build.add_argument("--no-pull", action="store_true", help="do not try to pull python:3.x-slim")
    build.add_argument("--mirror", help="Debian mirror for the offline bootstrap")
    build.add_argument("--suite", help="Debian suite for the offline bootstrap (default bookworm)")
    add_profile_flags(build)
    build.add_argument(
        "--wheelhouse", metavar="DIR", help="take the profile's wheels from DIR (no index)"
    )
    build.set_defaults(func=cmd_image_build)
    info = isub.add_parser(
        "info", help="say which sandbox image is present and whether it is current"
    )
    info.add_argument("--json", action="store_true")
    add_profile_flags(info)
    info.set_defaults(func=cmd_image_info)

    gc = sub.add_parser("gc", help="remove cellblock containers whose owner process is gone")
    gc.add_argument("--all", action="store_true", help="also remove containers of live owners")
    gc.set_defaults(func=cmd_gc)

    doctor = sub.add_parser("doctor", help="check the engine, the image and every sandbox promise")
    doctor.add_argument("--runtime", choices=["runc", "runsc"], default="runc")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=cmd_doctor)


def add_file_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="LOCAL[:DEST]",
        dest="files",
        help="upload a local file into the working directory (as DEST; repeatable)",
    )
    parser.add_argument(
        "--collect",
        action="append",
        default=[],
        metavar="PATTERN",
        help="bring back files matching this glob (relative; repeatable; default with "
        "--artifacts: every new or changed file)",
    )
    parser.add_argument(
        "--artifacts", metavar="DIR", help="write the files that come back into DIR"
    )


def file_specs(specs: list[str]) -> dict[str, Path]:
    """``LOCAL[:DEST]`` options as DEST -> local path (DEST defaults to LOCAL's base name)."""
    out: dict[str, Path] = {}
    for spec in specs:
        local, dest = spec, ""
        if ":" in spec and not Path(spec).exists():
            local, _, dest = spec.rpartition(":")
        path = Path(local)
        name = dest or path.name
        if name in out:
            raise FileError(f"--file {spec}: two files would be named {name!r}; give a DEST")
        out[name] = path
    return out


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="wall-clock limit")
    parser.add_argument("--memory", metavar="SIZE", help="memory limit, e.g. 256m (no swap)")
    parser.add_argument("--cpus", type=float, help="CPU quota in cores, e.g. 0.5")
    parser.add_argument("--pids", type=int, help="maximum number of processes and threads")
    parser.add_argument("--runtime", help="container runtime: runc or runsc (gVisor)")
    parser.add_argument(
        "--no-network",
        action="store_true",
        help="no network even if the policy's profile allows some (network: allowlist)",
    )


def read_program(path: str) -> tuple[bytes, str]:
    if path == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    try:
        return read_regular_file(path), path
    except NotRegularFileError as exc:
        raise SourceDecodeError(
            f"cannot read {path}: {exc.strerror}; give a regular file, or - for stdin"
        ) from None
    except OSError as exc:
        raise SourceDecodeError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_stdin_file(path: str) -> bytes:
    try:
        return read_regular_file(path)
    except OSError as exc:
        raise SourceDecodeError(
            f"cannot read the --stdin file {path}: {exc.strerror or exc}; give a regular file"
        ) from None


def _show_stream(text: str, stream: Any) -> None:
    """The program's output as text (never terminal commands), its last line ended, so that
    whatever cellblock writes next starts on a line of its own."""
    if not text:
        return
    shown = program_output(text)
    stream.write(shown if shown.endswith("\n") else shown + "\n")
    stream.flush()


@contextlib.contextmanager
def _live_output(
    enabled: bool,
) -> Iterator[tuple[LiveOutput, LiveOutput] | tuple[None, None]]:
    """Live writers for stdout and stderr (human mode); on an error, what they hold is shown."""
    if not enabled:
        yield None, None
        return
    out, err = LiveOutput(sys.stdout), LiveOutput(sys.stderr)
    try:
        yield out, err
    except BaseException:
        out.finish(None)
        err.finish(None)
        raise


def _run_session(args: argparse.Namespace) -> int:
    """``run --session A.py B.py ...``: the same as ``cellblock session A.py B.py ...``."""
    from cellblock.session import _cli as session_cli

    unsupported = {
        "--stdin": args.stdin,
        "--no-assess": args.no_assess,
        "--deep": args.deep,
        "--with": args.with_packages,
        "--requirements": args.requirements,
        "--wheelhouse": args.wheelhouse,
        "--jsonl": args.jsonl,
        "--shared-cell": args.shared_cell,
        "--concurrency": args.concurrency,
    }
    for flag, value in unsupported.items():
        if value:
            raise FileError(f"{flag} cannot be used with --session; leave it out")
    parser = argparse.ArgumentParser(add_help=False)
    session_cli.register(parser.add_subparsers())
    merged = vars(parser.parse_args(["session"]))  # the session command's own defaults
    merged.update({k: v for k, v in vars(args).items() if k in merged and k != "func"})
    files = args.file if isinstance(args.file, list) else [args.file]
    merged.update(steps=files, jsonl=False)
    return session_cli.cmd_session(argparse.Namespace(**merged))


def exit_status(result: ExecutionResult) -> int:
    if result.status is Status.TIMEOUT:
        return EXIT_TIMEOUT
    if result.status is Status.OOM:
        return EXIT_OOM
    if result.exit_code is None:
        return EXIT_INTERNAL
    return result.exit_code


def print_result(
    result: ExecutionResult,
    *,
    as_json: bool,
    extra: dict[str, Any] | None = None,
    output_shown: bool = False,  # already printed live (see LiveOutput)
) -> None:
    if as_json:
        data = result.to_dict()
        if extra:
            data.update(extra)
        print(json.dumps(data, indent=2))
        return
    # Every byte as the program wrote it is in --json; here it is shown, not obeyed.
    if not output_shown:
        _show_stream(result.stdout, sys.stdout)
        _show_stream(result.stderr, sys.stderr)
    notes = []
    if result.timed_out:
        notes.append(f"timed out after {result.limits.timeout_s:g}s")
    if result.oom_killed:
        notes.append(
            f"killed: out of memory (limit {result.limits.memory_bytes // (1024 * 1024)} MiB)"
        )
    if result.stdout_truncated:
        notes.append(f"stdout cut at {result.limits.stdout_bytes} of {result.stdout_bytes} bytes")
    if result.stderr_truncated:
        notes.append(f"stderr cut at {result.limits.stderr_bytes} of {result.stderr_bytes} bytes")
    if result.error:
        notes.append(result.error)
    for text in notes:
        note(text, sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from cellblock.pipeline import Pipeline

    if args.session:
        return _run_session(args)
    if batch_cli.is_batch(args):  # several files or --jsonl: a batch (docs/batch.md)
        stdin_all = read_stdin_file(args.stdin) if args.stdin else None
        return batch_cli.cmd_run_batch(args, stdin=stdin_all, overrides=limit_overrides(args))
    if not args.file:
        from cellblock.cli import CliParser

        CliParser(prog="cellblock run").error("give a program file, - for stdin, or --jsonl FILE")
    args.file = args.file[0]
    data, name = read_program(args.file)
    code = decode_source(data, name=name)
    stdin = read_stdin_file(args.stdin) if args.stdin else None
    overrides = limit_overrides(args)
    approver = _cli_approver(args, program_on_stdin=args.file == "-")
    specs, hashes = list(args.with_packages), None
    if args.requirements:
        from cellblock.packages import read_requirements_file

        more, hashes = read_requirements_file(Path(args.requirements))
        specs += more
    files = input_files(file_specs(args.files))
    collect = list(args.collect) or (["*"] if args.artifacts else [])
    with (
        Pipeline(
            args.policy,
            progress=_stderr_progress,
            audit_dir=Path(args.audit_dir) if args.audit_dir else None,
            use_pool=False,  # one program: a pool would only start containers to throw away
            wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None,
        ) as pipeline,
        _live_output(not args.json) as (live_out, live_err),
    ):
        result = pipeline.execute(
            code,
            stdin=stdin,
            approver=approver,
            skip_assessment=args.no_assess,
            deep=True if args.deep else None,
            limits_override=overrides,
            image=args.image,
            packages=specs or None,
            package_hashes=hashes,
            files={f.name: f.data for f in files},
            collect=collect,
            on_stdout=live_out,
            on_stderr=live_err,
        )
    if live_out is not None and live_err is not None:  # the rest, then notes on their own line
        live_out.finish(result.execution.stdout if result.execution else None)
        live_err.finish(result.execution.stderr if result.execution else None)
    if result.packages is not None and not args.json:
        for package_note in result.packages.findings:
            note(f"package {package_note.action}: {package_note.message}", sys.stderr)
    extra = result.to_dict()
    if result.execution is not None and not args.collect:
        # everything came back: keep only what the run created or changed
        unchanged = {(f.name, f.sha256) for f in files}
        program = hashlib.sha256(code.encode("utf-8", "surrogateescape")).hexdigest()
        unchanged.add(("main.py", program))
        kept = tuple(a for a in result.execution.artifacts if (a.name, a.sha256) not in unchanged)
        result = dataclasses.replace(
            result, execution=dataclasses.replace(result.execution, artifacts=kept)
        )
        extra = result.to_dict()
    if result.execution is not None and args.artifacts:
        paths = save_artifacts(result.execution.artifacts, Path(args.artifacts))
        for entry, path in zip(extra["artifacts"], paths, strict=True):
            entry["path"] = str(path)
    if result.execution is None:
        if args.json:
            print(json.dumps(extra, indent=2))
        else:
            what = "blocked by policy" if result.status == "blocked" else "not approved"
            note(f"{what}: {result.decision.reason}", sys.stderr)
            for finding in (result.assessment.findings if result.assessment else ())[:20]:
                print(escape_text(_finding_line(finding)), file=sys.stderr)
        return EXIT_BLOCKED if result.status == "blocked" else EXIT_NOT_APPROVED
    execution = result.execution
    if args.json:
        print(json.dumps(extra, indent=2))
    else:
        print_result(execution, as_json=False, output_shown=live_out is not None)
        show_files(extra)
    return exit_status(execution)


def show_files(data: dict[str, Any]) -> None:
    """One line per artifact and per refused file, names escaped."""
    for entry in data.get("artifacts") or ():
        where = f" -> {entry['path']}" if entry.get("path") else ""
        note(
            escape_text(
                f"artifact {entry['name']} ({entry['media_type']}, {entry['size']} bytes, "
                f"sha256 {entry['sha256'][:16]}){where}"
            ),
            sys.stderr,
        )
    for entry in data.get("files_refused") or ():
        note(escape_text(f"not collected: {entry['name']}: {entry['reason']}"), sys.stderr)


def limit_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The limit flags given on the command line; the pipeline only lets them tighten."""
    changes: dict[str, Any] = {}
    if args.timeout is not None:
        changes["timeout_s"] = args.timeout
    if args.memory is not None:
        changes["memory_bytes"] = parse_size(args.memory, field_name="memory_bytes")
    if args.cpus is not None:
        changes["cpus"] = args.cpus
    if args.pids is not None:
        changes["pids"] = args.pids
    if args.runtime is not None:
        changes["runtime"] = args.runtime
    if getattr(args, "no_network", False):
        changes.update(network="none", egress=None)
    if changes:
        Limits().replace(**changes)  # validate now: a bad flag is an error naming the field
    return changes


def _cli_approver(args: argparse.Namespace, *, program_on_stdin: bool) -> Any:
    from cellblock.pipeline import Approval, ReviewRequest

    user = getpass.getuser()
    if args.approve:
        return lambda _req: Approval(True, by=f"cli --approve ({user})")
    if program_on_stdin or not sys.stdin.isatty():
        return None  # no terminal to ask: the answer is no

    def ask(req: ReviewRequest) -> Approval:
        level = req.assessment.level.value if req.assessment else "none"
        note(f"this code needs approval ({req.decision.reason})", sys.stderr)
        for f in (req.assessment.findings if req.assessment else ())[:20]:
            print(escape_text(_finding_line(f)), file=sys.stderr)
        answer = input(f"Run code assessed {level} under profile {req.decision.profile}? [y/N] ")
        ok = answer.strip().lower() in ("y", "yes")
        return Approval(ok, by=f"terminal ({user})", reason="answered " + (answer.strip() or "no"))

    return ask


def _finding_line(finding: Any) -> str:
    # the message may quote the program; it is escaped and indented, never a line of its own
    message = " ".join(str(finding.message).split())
    return f"  line {finding.line}: [{finding.severity}] {finding.rule_id}: {message}"


def _stderr_progress(message: str) -> None:
    print(f"[cellblock] {escape_text(message)}", file=sys.stderr, flush=True)


def add_profile_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="image profile: base (default), data, or one the policy declares under images:",
    )
    parser.add_argument(
        "--policy", metavar="NAME|FILE", help="policy whose images: declares the profile"
    )


def cmd_image_build(args: argparse.Namespace) -> int:
    from cellblock.sandbox.docker import connect
    from cellblock.sandbox.image import build_image

    if args.profile and args.profile != "base":
        from cellblock.sandbox._profile_cli import cmd_profile_build

        return cmd_profile_build(args)

    info = build_image(
        connect(),
        force=args.force,
        progress=_stderr_progress,
        try_pull=not args.no_pull,
        mirror=args.mirror,
        suite=args.suite,
    )
    print(f"{info.tag} {info.image_id}")
    return 0


def cmd_image_info(args: argparse.Namespace) -> int:
    from cellblock.sandbox.docker import connect
    from cellblock.sandbox.image import inspect_image

    if args.profile and args.profile != "base":
        from cellblock.sandbox._profile_cli import cmd_profile_info

        return cmd_profile_info(args)

    info = inspect_image(connect())
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    elif not info.present:
        print(f"{info.tag}: absent (build it with `cellblock image build`)")
    else:
        state = "current" if info.current else "STALE (rebuild with `cellblock image build`)"
        size = (info.size_bytes or 0) / (1024 * 1024)
        print(
            f"{info.tag}: {state}\n  id      {info.image_id}\n  base    {info.base}\n"
            f"  python  {info.python}\n  size    {size:.0f} MiB\n  created {info.created}\n"
            f"  recipe  {info.recipe}"
        )
    return 0 if info.present and info.current else 1


def cmd_gc(args: argparse.Namespace) -> int:
    from cellblock.sandbox.docker import connect, reap

    removed = reap(connect(), include_live=args.all)
    print(f"removed {removed} container(s)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from cellblock.sandbox.docker import DockerBackend, connect
    from cellblock.sandbox.doctor import Check, failed_checks, run_probe
    from cellblock.sandbox.image import inspect_image

    checks: list[Check] = []
    try:
        client = connect()
        checks.append(Check("engine reachable", True, str(client.version().get("Version"))))
        info = inspect_image(client)
        checks.append(
            Check(
                "image current",
                info.present and info.current,
                f"{info.tag} {'current' if info.current else 'absent or stale'}",
            )
        )
        backend = DockerBackend(client=client)
        backend.check_runtime(args.runtime)
        checks.append(Check("runtime available", True, args.runtime))
        limits = Limits(runtime=args.runtime, timeout_s=30)
        probe_checks, _ = run_probe(backend, limits)
        checks += probe_checks
        from cellblock.sandbox.doctor import network_checks

        checks += network_checks(backend, args.runtime)  # allowlist mode too
    except CellblockError as exc:
        checks.append(Check("setup", False, str(exc)))
    failed = failed_checks(checks)  # advisory checks report, never fail
    if args.json:
        print(
            json.dumps(
                {
                    "runtime": args.runtime,
                    "ok": not failed,
                    "checks": [c.to_dict() for c in checks],
                },
                indent=2,
            )
        )
    else:
        print(f"cellblock doctor (runtime {args.runtime})")
        for c in checks:
            mark = "ok  " if c.ok else "note" if c.advisory else "FAIL"
            print(f"  {mark}  {c.name:<31} {c.detail}")
        print("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    return 0 if not failed else 1
