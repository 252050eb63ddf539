"""The CLI contract: flags, --json fields, exit statuses, and one-sentence errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

RESULT_FIELDS = {
    "status",
    "exit_code",
    "signal",
    "stdout",
    "stderr",
    "stdout_truncated",
    "stderr_truncated",
    "timed_out",
    "oom_killed",
    "duration_s",
    "cpu_time_s",
    "peak_memory_bytes",
    "limits",
    "image_id",
    "runtime",
}


def cellblock(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellblock.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_run_json_has_the_documented_fields(tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    program = tmp_path / "p.py"
    program.write_text("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n")
    proc = cellblock(
        "run",
        str(program),
        "--json",
        "--timeout",
        "5",
        "--memory",
        "128m",
        "--cpus",
        "0.5",
        "--pids",
        "40",
    )
    assert proc.returncode == 3
    data = json.loads(proc.stdout)
    assert RESULT_FIELDS <= set(data)
    assert (data["status"], data["exit_code"], data["stdout"], data["stderr"]) == (
        "error",
        3,
        "out\n",
        "err\n",
    )
    assert data["limits"]["memory_bytes"] == 128 * 1024 * 1024
    assert (
        data["limits"]["cpus"] == 0.5
        and data["limits"]["pids"] == 40
        and data["limits"]["timeout_s"] == 5
    )


def test_run_from_stdin_passes_output_through(docker_client) -> None:  # type: ignore[no-untyped-def]
    proc = cellblock("run", "-", stdin="print('héllo')\n")
    assert (proc.returncode, proc.stdout) == (0, "héllo\n")


def test_timeout_and_oom_have_distinct_exit_statuses(docker_client) -> None:  # type: ignore[no-untyped-def]
    proc = cellblock("run", "-", "--timeout", "1", stdin="while True: pass\n")
    assert proc.returncode == 124
    assert "timed out after 1s" in proc.stderr
    proc = cellblock("run", "-", "--memory", "64m", stdin="b = b'x' * (1 << 30)\n")
    assert proc.returncode == 123
    assert "out of memory" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--memory=-5m"],
            "invalid limit 'memory_bytes': expected a size such as 256m or 1g, got '-5m'",
        ),
        (["--timeout", "0"], "invalid limit 'timeout_s': must be between 0.1 and 86400, got 0.0"),
        (
            ["--runtime", "kata"],
            "invalid limit 'runtime': unknown runtime 'kata'; expected one of runc, runsc",
        ),
        (["--pids", "0"], "invalid limit 'pids': must be between 8 and 1e+06, got 0"),
    ],
)
def test_invalid_limits_are_one_clear_sentence(flags: list[str], message: str) -> None:
    proc = cellblock("run", "-", *flags, stdin="print(1)\n")
    assert proc.returncode == 64
    assert proc.stderr.strip() == f"cellblock: error: {message}"
    assert "Traceback" not in proc.stderr


def test_undecodable_source_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"print('\xff\xfe')\n")
    proc = cellblock("run", str(bad))
    assert proc.returncode == 65
    assert proc.stderr.startswith(f"cellblock: error: {bad} is not valid source text")
    assert "Traceback" not in proc.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = cellblock("run", str(tmp_path / "nope.py"))
    assert proc.returncode == 65
    assert (
        proc.stderr.strip()
        == f"cellblock: error: cannot read {tmp_path / 'nope.py'}: No such file or directory"
    )


def test_unreachable_engine_is_a_clear_error() -> None:
    proc = cellblock(
        "run", "-", stdin="print(1)\n", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    )
    assert proc.returncode == 70
    assert proc.stderr.strip() == (
        "cellblock: error: cannot reach the Docker engine at unix:///nonexistent/docker.sock; start it "
        "(for example `sudo systemctl start docker`) or point DOCKER_HOST at a running engine"
    )


def test_permission_denied_on_socket_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a socket another user cannot open")
    import socket

    path = tmp_path / "engine.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen()
    os.chmod(path, 0o600)
    os.chmod(tmp_path, 0o755)
    try:
        proc = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-m",
                "cellblock.cli",
                "doctor",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_HOST": f"unix://{path}"},
            timeout=60,
        )
    finally:
        srv.close()
    assert "permission denied on the Docker engine socket" in proc.stdout + proc.stderr
    assert proc.returncode != 0


def test_missing_image_is_a_clear_error(docker_client) -> None:  # type: ignore[no-untyped-def]
    from cellblock.sandbox.docker import DockerBackend
    from cellblock.sandbox.errors import ImageMissingError

    with pytest.raises(
        ImageMissingError,
        match=r"the sandbox image cellblock/sandbox:no-such is not on the engine; build it with `cellblock image build`",
    ):
        DockerBackend(client=docker_client, image="cellblock/sandbox:no-such")


def test_runsc_missing_is_refused_not_downgraded(docker_client) -> None:  # type: ignore[no-untyped-def]
    from cellblock.sandbox import Limits, RuntimeUnavailableError
    from cellblock.sandbox.docker import DockerBackend

    backend = DockerBackend(client=docker_client)
    backend._runtimes = frozenset({"runc"})  # an engine without gVisor
    with pytest.raises(RuntimeUnavailableError, match="never falls back"):
        backend.prepare(Limits(runtime="runsc"))


def test_image_info_and_doctor(docker_client) -> None:  # type: ignore[no-untyped-def]
    info = cellblock("image", "info", "--json")
    assert info.returncode == 0
    data = json.loads(info.stdout)
    assert data["present"] and data["current"] and data["recipe"]
    doctor = cellblock("doctor", "--json")
    report = json.loads(doctor.stdout)
    assert doctor.returncode == 0, report
    names = {c["name"] for c in report["checks"]}
    assert {
        "non-root user",
        "no effective capabilities",
        "no-new-privileges",
        "seccomp filter mode",
        "io_uring refused",
        "only loopback network",
        "read-only root",
        "work directory writable",
        "pids limit",
        "memory limit",
        "no engine socket",
    } <= names
    assert all(c["ok"] or c["advisory"] for c in report["checks"])  # notes never fail


def test_doctor_under_gvisor(docker_client, backend) -> None:  # type: ignore[no-untyped-def]
    if "runsc" not in backend.runtimes():
        if os.environ.get("CELLBLOCK_REQUIRE_RUNSC"):
            pytest.fail("runsc required")
        pytest.skip("runsc not registered")
    doctor = cellblock("doctor", "--runtime", "runsc", "--json")
    report = json.loads(doctor.stdout)
    assert doctor.returncode == 0, report
    assert report["runtime"] == "runsc"


def test_image_build_is_idempotent(docker_client) -> None:  # type: ignore[no-untyped-def]
    proc = cellblock("image", "build")
    assert proc.returncode == 0
    assert "is current" in proc.stderr and "nothing to do" in proc.stderr
