"""End to end: real analyzers, real engine, real audit log, real signatures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellblock.audit import generate_keypair, verify
from cellblock.pipeline import Approval, AuditUnavailableError, Pipeline, ReviewRequest, execute
from cellblock.policy import PolicyError, load_policy

pytestmark = pytest.mark.docker

# Prints the memory and pids limits as seen from inside (cgroup under runc, guest memory under gVisor)
LIMITS_PROBE = """
def read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return None
mem = read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
if mem is None:
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem = str(int(line.split()[1]) * 1024)
print(mem)
"""


@pytest.fixture
def audit_env(tmp_path: Path):  # type: ignore[no-untyped-def]
    key, pub = tmp_path / "keys" / "k.key", tmp_path / "keys" / "k.pub"
    key.parent.mkdir()
    generate_keypair(key, pub)
    return tmp_path / "audit", key, pub


def policy_file(tmp_path: Path, preset: str, audit_dir: Path, key: Path, **extra: str) -> Path:
    """A copy of a preset with the audit log pointed at the test's directory."""
    from cellblock.policy import preset_text

    text = preset_text(preset)
    # the limits probe reads the cgroup, which the analyzers rightly flag as an escape path;
    # the override also exercises rule-level overrides from the policy
    text = text.replace(
        "rule_levels: {}", "rule_levels: {cb.escape.path: none, sg-escape-persistence-path: none}"
    )
    lines = text.splitlines()
    out = []
    skip = False
    for line in lines:
        if line.startswith("audit:"):
            skip = True
            continue
        if skip and (line.startswith(" ") or not line.strip()):
            continue
        skip = False
        out.append(line)
    out.append("audit:")
    out.append(f"  directory: {audit_dir}")
    out.append(f"  signing_key: {key}")
    for k, v in extra.items():
        out.append(f"  {k}: {v}")
    path = tmp_path / f"{preset}.yaml"
    path.write_text("\n".join(out) + "\n")
    return path


def containers_created(client, since_ns: int, until_ns: int) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    """Containers this process created on the engine between two instants (engine events)."""
    events = client.events(
        since=since_ns // 1_000_000_000 - 1, until=until_ns // 1_000_000_000 + 1, decode=True,
        filters={"type": "container", "event": "create", "label": f"cellblock.owner_pid={os.getpid()}"},
    )
    return [e for e in events if since_ns <= int(e.get("timeNano", 0)) <= until_ns]


def records(audit_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for seg in sorted(audit_dir.glob("seg-*.jsonl")):
        for line in seg.read_bytes().splitlines():
            out.append(json.loads(line)["record"])
    return out


def container_memory(execution, budget: int) -> int:  # type: ignore[no-untyped-def]
    """The container's memory limit for a program budget: under gVisor the cgroup (and so
    gVisor's MemTotal) also holds headroom for gVisor's kernel; the runner enforces the budget."""
    from cellblock.sandbox.docker import runsc_headroom

    assert execution.limits.memory_bytes == budget
    return budget + (runsc_headroom(execution.limits) if execution.runtime == "runsc" else 0)


def run_records(audit_dir: Path, run_id: str) -> list[str]:
    return [r["type"] for r in records(audit_dir) if r["payload"].get("run_id") == run_id]


def test_benign_code_runs_under_the_open_profile_and_is_recorded(
    tmp_path: Path, audit_env, backend
) -> None:  # type: ignore[no-untyped-def]
    audit_dir, key, pub = audit_env
    policy = policy_file(tmp_path, "standard", audit_dir, key)
    result = execute(
        "import statistics\nprint(statistics.mean([1, 2, 3]))\n" + LIMITS_PROBE,
        policy=str(policy),
        backend=backend,
    )
    assert result.assessment is not None and result.assessment.level.value == "none"
    assert (result.decision.action, result.decision.profile) == ("allow", "open")
    assert result.execution is not None and result.execution.stdout.splitlines()[0] == "2"
    open_memory = load_policy(str(policy)).policy.profiles["open"].memory
    assert int(result.execution.stdout.splitlines()[1]) == container_memory(
        result.execution, open_memory
    )
    assert run_records(audit_dir, result.run_id) == [
        "assessment",
        "decision",
        "execution.started",
        "execution.finished",
    ]
    report = verify(audit_dir, trust_root=pub)
    assert report.ok, report.to_dict()
    finished = [r for r in records(audit_dir) if r["type"] == "execution.finished"][0]["payload"]
    assert finished["status"] == "ok" and finished["stdout_sha256"] and finished["image_id"]


def test_medium_finding_runs_under_the_restricted_profile(
    tmp_path: Path, audit_env, backend
) -> None:  # type: ignore[no-untyped-def]
    audit_dir, key, pub = audit_env
    policy = policy_file(tmp_path, "standard", audit_dir, key)
    code = "import os\nenv = dict(os.environ)\nprint(os.environ)\n" + LIMITS_PROBE
    result = execute(code, policy=str(policy), backend=backend)
    assert result.assessment is not None and result.assessment.level.value == "medium"
    assert (result.decision.action, result.decision.profile) == ("restrict", "restricted")
    loaded = load_policy(str(policy)).policy
    restricted, open_ = loaded.profiles["restricted"].memory, loaded.profiles["open"].memory
    assert restricted < open_
    assert result.execution is not None, result.decision
    seen = int(result.execution.stdout.splitlines()[-1])  # seen from inside
    assert seen == container_memory(result.execution, restricted)
    assert verify(audit_dir, trust_root=pub).ok


def test_review_without_approver_is_refused_and_with_one_runs(
    tmp_path: Path, audit_env, backend
) -> None:  # type: ignore[no-untyped-def]
    audit_dir, key, pub = audit_env
    policy = policy_file(tmp_path, "strict", audit_dir, key)
    code = "import os\nprint(os.environ)\n"  # medium: strict requires review
    refused = execute(code, policy=str(policy), backend=backend)
    assert refused.status == "not_approved" and refused.execution is None
    assert refused.approval is not None and not refused.approval.approved

    seen: list[ReviewRequest] = []

    def reviewer(req: ReviewRequest) -> Approval:
        seen.append(req)
        return Approval(True, by="alice", reason="looked fine")

    approved = execute(code, policy=str(policy), backend=backend, approver=reviewer)
    assert approved.execution is not None and approved.execution.exit_code == 0
    assert seen and seen[0].decision.action == "review"
    assert run_records(audit_dir, refused.run_id) == ["assessment", "decision", "approval"]
    assert run_records(audit_dir, approved.run_id) == [
        "assessment",
        "decision",
        "approval",
        "execution.started",
        "execution.finished",
    ]
    approvals = [r["payload"] for r in records(audit_dir) if r["type"] == "approval"]
    assert [a["approved"] for a in approvals] == [False, True]
    assert approvals[1]["by"] == "alice"
    assert verify(audit_dir, trust_root=pub).ok


def test_critical_is_blocked_and_never_reaches_the_engine(
    tmp_path: Path, audit_env, docker_client
) -> None:  # type: ignore[no-untyped-def]
    audit_dir, key, pub = audit_env
    policy = policy_file(tmp_path, "strict", audit_dir, key)
    since = time.time_ns()
    code = "import ctypes\nctypes.CDLL(None).system(b'id')\n"
    result = execute(code, policy=str(policy))
    until = time.time_ns()
    assert result.status == "blocked" and result.execution is None
    assert result.assessment is not None and result.assessment.level.value == "critical"
    assert any(f.category == "ffi" for f in result.assessment.findings)
    assert containers_created(docker_client, since, until) == []
    # the same check does see the container of a run that is allowed
    since = time.time_ns()
    allowed = execute("print('fine')", policy=str(policy))
    until = time.time_ns()
    assert allowed.execution is not None
    assert len(containers_created(docker_client, since, until)) == 1
    assert run_records(audit_dir, result.run_id) == ["assessment", "decision"]
    assert verify(audit_dir, trust_root=pub).ok


def test_no_assess_only_when_the_policy_allows_it(tmp_path: Path, audit_env, backend) -> None:  # type: ignore[no-untyped-def]
    audit_dir, key, pub = audit_env
    strict = policy_file(tmp_path, "strict", audit_dir, key)
    with pytest.raises(PolicyError, match="does not allow skipping the assessment"):
        execute("print(1)", policy=str(strict), backend=backend, skip_assessment=True)
    dev = policy_file(tmp_path, "trusted-dev", audit_dir, key)
    result = execute("print(1)", policy=str(dev), backend=backend, skip_assessment=True)
    assert result.assessment is None and result.execution is not None
    assert run_records(audit_dir, result.run_id)[0] == "assessment.skipped"
    loaded = [r["payload"] for r in records(audit_dir) if r["type"] == "policy.loaded"]
    assert "assessment.allow_skip" in loaded[-1]["loosenings"]


def test_cli_run_json_combines_result_assessment_and_decision(tmp_path: Path, audit_env) -> None:  # type: ignore[no-untyped-def]
    audit_dir, key, pub = audit_env
    policy = policy_file(tmp_path, "strict", audit_dir, key)
    ok = subprocess.run(
        [sys.executable, "-m", "cellblock.cli", "run", "-", "--json", "--policy", str(policy)],
        input="print('hi')\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    data = json.loads(ok.stdout)
    assert ok.returncode == 0, ok.stderr
    assert data["stdout"] == "hi\n" and data["status"] == "ok"
    assert data["assessment"]["level"] == "none" and data["assessment"]["findings"] == []
    assert set(data["decision"]) >= {"action", "profile", "reason"}
    blocked = subprocess.run(
        [sys.executable, "-m", "cellblock.cli", "run", "-", "--policy", str(policy)],
        input="import ctypes\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert blocked.returncode == 126
    assert "blocked by policy" in blocked.stderr and "ffi" in blocked.stderr.lower()
    review = subprocess.run(
        [sys.executable, "-m", "cellblock.cli", "run", "-", "--json", "--policy", str(policy)],
        input="import os\nprint(os.environ)\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert review.returncode == 127 and json.loads(review.stdout)["status"] == "not_approved"
    approved = subprocess.run(
        [sys.executable, "-m", "cellblock.cli", "run", "-", "--approve", "--policy", str(policy)],
        input="import os\nprint(len(os.environ) > 0)\nprint(os.environ['HOME'])\nprint(os.environ)\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith("True\n/work\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_audit_disk_blocks_execution(tmp_path: Path, audit_env, docker_client) -> None:  # type: ignore[no-untyped-def]
    _, key, pub = audit_env
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        audit_dir = mnt / "audit"
        policy = policy_file(tmp_path, "standard", audit_dir, key)
        pipeline = Pipeline(str(policy))
        if True:
            # fill the disk so that the next records cannot be written
            fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            finally:
                os.close(fd)
            since = time.time_ns()
            with pytest.raises(AuditUnavailableError, match="no code"):
                pipeline.execute("print('must not run')\n" + "x = 1\n" * 2000)
            until = time.time_ns()
            with pytest.raises(AuditUnavailableError, match="closing checkpoint"):
                pipeline.close()
        assert containers_created(docker_client, since, until) == []
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_pipeline_uses_the_warm_pool_when_the_policy_enables_it(tmp_path: Path, audit_env, backend) -> None:  # type: ignore[no-untyped-def]
    audit_dir, key, pub = audit_env
    policy = policy_file(tmp_path, "standard", audit_dir, key)
    assert load_policy(str(policy)).policy.pool.enabled
    with Pipeline(str(policy), backend=backend) as pipeline:
        pipeline.warm()
        first = pipeline.execute("print('one')")
        second = pipeline.execute("print('two')")
    assert first.execution is not None and second.execution is not None
    assert first.execution.pooled and second.execution.pooled
    assert (first.execution.stdout, second.execution.stdout) == ("one\n", "two\n")
    assert first.execution.container_id != second.execution.container_id
    finished = [r["payload"] for r in records(audit_dir) if r["type"] == "execution.finished"]
    assert [f["pooled"] for f in finished] == [True, True]
    assert verify(audit_dir, trust_root=pub).ok


def test_a_coding_cookie_cannot_hide_code_from_the_assessment(tmp_path: Path, audit_env) -> None:  # type: ignore[no-untyped-def]
    # found by a red-team review: with the cookie left in the text, the analyzers decoded the
    # UTF-8 bytes as UTF-7 ('+ACM-' became '#') while the sandbox ran the call
    audit_dir, key, pub = audit_env
    policy = policy_file(tmp_path, "strict", audit_dir, key)
    program = b'# -*- coding: utf-7 -*-\nACM = 0\nx = 1 +-ACM- __import__("os").system("id")\n'
    for code in (program, program.decode("utf-7")):
        result = execute(code, policy=str(policy))
        assert result.status == "blocked", result.assessment
        assert result.assessment is not None
        assert any("os.system" in f.message for f in result.assessment.findings)


def test_loosening_a_hardening_flag_takes_effect_and_is_recorded(tmp_path: Path, audit_env, backend) -> None:  # type: ignore[no-untyped-def]
    audit_dir, key, pub = audit_env
    code = ("import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "rc = libc.syscall(294, 0)\nprint('ok' if rc >= 0 else errno.errorcode[ctypes.get_errno()])\n")
    strict = policy_file(tmp_path, "trusted-dev", audit_dir, key)
    text = strict.read_text().replace("seccomp: cellblock", "seccomp: docker-default")
    assert "docker-default" in text
    loose = tmp_path / "loose.yaml"
    loose.write_text(text.replace("runtime: auto", "runtime: runc"))
    strict.write_text(strict.read_text().replace("runtime: auto", "runtime: runc"))
    # ctypes is critical by default; this test is about the sandbox flag, not the assessment
    for path in (strict, loose):
        path.write_text(path.read_text().replace("category_levels: {}", "category_levels: {ffi: none}"))
    tight = execute(code, policy=str(strict), backend=backend)
    relaxed = execute(code, policy=str(loose), backend=backend)
    assert tight.execution is not None and relaxed.execution is not None, (tight.decision, relaxed.decision)
    assert tight.execution.stdout.strip() == "EPERM"  # inotify refused by cellblock's profile
    assert relaxed.execution.stdout.strip() == "ok"  # allowed by the engine's default profile
    decisions = [r["payload"] for r in records(audit_dir) if r["type"] == "decision"]
    assert "hardening.seccomp" not in decisions[0]["loosenings"]
    assert {"hardening.seccomp", "limits.seccomp"} <= set(decisions[1]["loosenings"])
    assert verify(audit_dir, trust_root=pub).ok
