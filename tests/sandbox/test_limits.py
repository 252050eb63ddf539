"""Limits are one validated value object; every bad value names its field."""

from __future__ import annotations

import json

import pytest

from cellblock.sandbox import ExecutionResult, InvalidLimitsError, Limits, Status, parse_size
from cellblock.sandbox._sandbox import decode_source
from cellblock.sandbox.docker import _decode_cut
from cellblock.sandbox.errors import SourceDecodeError
from cellblock.sandbox.interface import RunRequest, classify


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"memory_bytes": -1}, "memory_bytes"),
        ({"memory_bytes": 1024}, "memory_bytes"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"timeout_s": "10"}, "timeout_s"),
        ({"cpus": 0}, "cpus"),
        ({"pids": 0}, "pids"),
        ({"pids": True}, "pids"),
        ({"runtime": "kata"}, "runtime"),
        ({"network": "host"}, "network"),
        ({"stdout_bytes": -5}, "stdout_bytes"),
        ({"tmpfs_bytes": 0}, "tmpfs_bytes"),
    ],
)
def test_invalid_limit_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidLimitsError) as info:
        Limits(**changes)  # type: ignore[arg-type]
    assert info.value.field == field
    assert f"invalid limit {field!r}" in str(info.value)


def test_unknown_runtime_message_lists_choices() -> None:
    with pytest.raises(
        InvalidLimitsError, match=r"unknown runtime 'kata'; expected one of runc, runsc"
    ):
        Limits(runtime="kata")


def test_from_dict_rejects_unknown_field() -> None:
    with pytest.raises(InvalidLimitsError) as info:
        Limits.from_dict({"memroy_bytes": 1})
    assert info.value.field == "memroy_bytes"


def test_tighten_takes_the_stricter_of_each_field() -> None:
    loose = Limits(memory_bytes=512 * 2**20, timeout_s=30, pids=128, runtime="runc")
    tight = Limits(memory_bytes=128 * 2**20, timeout_s=60, pids=32, runtime="runsc")
    both = loose.tighten(tight)
    assert (both.memory_bytes, both.timeout_s, both.pids, both.runtime) == (
        128 * 2**20,
        30,
        32,
        "runsc",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("256m", 256 * 2**20),
        ("1g", 2**30),
        ("1GiB", 2**30),
        ("512k", 512 * 1024),
        ("42", 42),
        (7, 7),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1m", "1.5.2g", ""])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InvalidLimitsError, match="expected a size"):
        parse_size(text, field_name="memory")


def test_request_rejects_oversized_code() -> None:
    with pytest.raises(InvalidLimitsError) as info:
        RunRequest("x" * 200, limits=Limits(max_code_bytes=100))
    assert info.value.field == "max_code_bytes"


def test_classification_precedence() -> None:
    assert (
        classify(exit_code=None, signal=9, timed_out=True, oom_killed=True, truncated=True)
        is Status.TIMEOUT
    )
    assert (
        classify(exit_code=137, signal=9, timed_out=False, oom_killed=True, truncated=False)
        is Status.OOM
    )
    assert (
        classify(exit_code=137, signal=9, timed_out=False, oom_killed=False, truncated=False)
        is Status.KILLED
    )
    assert (
        classify(exit_code=3, signal=None, timed_out=False, oom_killed=False, truncated=True)
        is Status.ERROR
    )
    assert (
        classify(exit_code=0, signal=None, timed_out=False, oom_killed=False, truncated=True)
        is Status.OUTPUT_TRUNCATED
    )
    assert (
        classify(exit_code=0, signal=None, timed_out=False, oom_killed=False, truncated=False)
        is Status.OK
    )


def test_result_round_trips_through_json() -> None:
    result = ExecutionResult(
        status=Status.OK,
        exit_code=0,
        signal=None,
        stdout="é\n",
        stderr="",
        stdout_truncated=False,
        stderr_truncated=False,
        stdout_bytes=3,
        stderr_bytes=0,
        timed_out=False,
        oom_killed=False,
        duration_s=0.01,
        total_s=0.02,
        cpu_time_s=0.01,
        peak_memory_bytes=1,
        limits=Limits(),
        runtime="runc",
        image_id="sha256:x",
        container_id="c",
    )
    again = ExecutionResult.from_dict(json.loads(result.to_json()))
    assert again == result


def test_cut_never_splits_a_character() -> None:
    data = "aé€😀".encode()
    for cut in range(len(data) + 1):
        text = _decode_cut(data[:cut], truncated=cut < len(data))
        assert "\ufffd" not in text
        assert "aé€😀".startswith(text)


def test_decode_source_honours_coding_cookie_and_rejects_garbage() -> None:
    assert "coding" not in decode_source("# -*- coding: utf-7 -*-\nx = 1\n").splitlines()[0]
    latin = "# -*- coding: latin-1 -*-\nprint('caf\xe9')\n".encode("latin-1")
    assert "café" in decode_source(latin)
    with pytest.raises(SourceDecodeError, match="not valid source text"):
        decode_source(b"print('\xff\xfe')\n", name="bad.py")


def test_runner_source_compiles_for_the_image_python() -> None:
    from cellblock.sandbox.image import runner_source

    compile(runner_source(), "cellblock_runner.py", "exec")


def test_seccomp_profile_refuses_the_dangerous_calls() -> None:
    from cellblock.sandbox.docker import seccomp_profile

    profile = json.loads(seccomp_profile())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = {
        n
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW"
        for n in rule["names"]
    }
    for name in (
        "io_uring_setup",
        "io_uring_enter",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "userfaultfd",
        "perf_event_open",
        "ptrace",
        "unshare",
        "setns",
        "mount",
    ):
        assert name not in allowed


def test_shipped_seccomp_profile_is_what_the_generator_writes() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    generated = subprocess.run([sys.executable, str(root / "scripts" / "gen_seccomp.py")],
                               capture_output=True, text=True, check=True).stdout
    shipped = (root / "src" / "cellblock" / "sandbox" / "seccomp.json").read_text()
    assert json.loads(generated) == json.loads(shipped)
