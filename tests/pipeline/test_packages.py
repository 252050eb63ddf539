"""Per-run packages end to end: --with / packages=, scanning, policy rules, audit records,
the wheels read-only in the sandbox with networking off, and each refusal's exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cellblock
from cellblock.packages import (
    DeniedPackageError,
    PackageError,
    ScanUnavailableError,
    VulnerablePackageError,
)
from cellblock.pipeline import Pipeline
from cellblock.policy import Policy, load_preset
from cellblock.sandbox import Limits, RunRequest, WheelPayload

from .._cli import run_cellblock as _cli
from .test_pipeline import records

pytestmark = [pytest.mark.docker]

# tabulate 0.10.0: a small pure-Python wheel, the latest release (so every PyPI-style JSON API,
# even one that serves only project documents, can say whether it has advisories)
TABULATE = "tabulate==0.10.0"
PROGRAM = """\
import os, sys, socket
from tabulate import tabulate
import tabulate as t
print(tabulate([["a", 1]], headers=["k", "v"]).splitlines()[0].split())
print(t.__file__.startswith("/tmp/"), os.access(t.__file__, os.W_OK))
try:
    socket.create_connection(("127.0.0.1", 9), timeout=1)
    print("network")
except OSError:
    print("no network")
"""


def _policy(**packages: object) -> Policy:
    data = load_preset("standard").to_dict()
    for profile in data["profiles"].values():
        profile["runtime"] = "runc"
        profile["packages"] = {"allowed": True, **packages}
    return Policy.from_dict(data)


def test_with_package_runs_read_only_and_offline(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    with Pipeline(_policy(), audit_dir=audit) as p:
        result = p.execute(PROGRAM, packages=[TABULATE], approver=lambda _r: True)
    assert result.execution is not None, result.decision
    lines = result.execution.stdout.splitlines()
    assert lines == ["['k', 'v']", "True False", "no network"], result.execution.stderr
    assert result.packages is not None and result.packages.action == "allow"
    assert result.packages.scan is not None and result.packages.scan.complete
    types = [r["type"] for r in records(audit) if r["payload"].get("run_id") == result.run_id]
    assert types.index("packages.requested") < types.index("packages.resolved")
    assert types.index("packages.resolved") < types.index("execution.started")
    resolved = next(r["payload"] for r in records(audit) if r["type"] == "packages.resolved")
    dist = resolved["resolution"]["distributions"][0]
    assert (dist["name"], dist["version"], len(dist["sha256"])) == ("tabulate", "0.10.0", 64)
    assert resolved["scan"]["reachable"] is True
    assert result.to_dict()["packages"]["action"] == "allow"
    from cellblock.audit import default_public_key, verify

    report = verify(audit, trust_root=default_public_key())
    assert report.ok, report.to_dict()


def test_vulnerable_package_is_blocked_and_recorded(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    with Pipeline(_policy(), audit_dir=audit) as p, pytest.raises(VulnerablePackageError):
        p.execute("print('never')", packages=["ecdsa==0.19.2"])
    refused = [r["payload"] for r in records(audit) if r["type"] == "packages.refused"]
    assert refused and refused[0]["kind"] == "VulnerablePackageError"
    assert not [r for r in records(audit) if r["type"] == "execution.started"]


def test_vulnerability_review_asks_the_approver(tmp_path: Path) -> None:
    asked = []

    def approver(request):  # type: ignore[no-untyped-def]
        asked.append(request.packages)
        return False

    with Pipeline(_policy(vulnerabilities="review"), audit_dir=tmp_path / "a") as p:
        result = p.execute("print(1)", packages=["ecdsa==0.19.2"], approver=approver)
    assert asked and asked[0].action == "review" and result.status == "not_approved"


def test_denied_name_is_refused_before_download(tmp_path: Path) -> None:
    with Pipeline(_policy(deny=["tab*"]), audit_dir=tmp_path / "a") as p, pytest.raises(
        DeniedPackageError, match="denies the package 'tabulate'"
    ):
        p.execute("print(1)", packages=[TABULATE])


def test_unreachable_scan_service_fails_closed(
    tmp_path: Path, dead_index_env: dict[str, str], closed_port: int
) -> None:
    from cellblock._packages_step import PackagesStep
    from cellblock.packages import PipAuditScanner

    scanner = PipAuditScanner(
        env=dead_index_env,
        osv_url=f"http://127.0.0.1:{closed_port}/v1/query",
        timeout_s=3,
        cache_ttl_s=0,
    )
    with Pipeline(_policy(), audit_dir=tmp_path / "a") as p:
        p._packages_step = PackagesStep(scanner=scanner)
        with pytest.raises(ScanUnavailableError, match="could not be reached"):
            p.execute("print(1)", packages=[TABULATE])
    with Pipeline(_policy(scan_unavailable="warn"), audit_dir=tmp_path / "b") as p:
        p._packages_step = PackagesStep(scanner=scanner)
        result = p.execute("print(1)", packages=[TABULATE])
    assert result.packages is not None and result.packages.action == "warn"
    assert result.packages.scan is not None and not result.packages.scan.reachable


def test_library_execute_and_sandbox_run_take_packages(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(_policy().to_yaml())
    result = cellblock.execute(
        "import tabulate; print(tabulate.__version__)",
        policy=policy,
        packages=[TABULATE],
        audit_dir=tmp_path / "a",
    )
    assert result.execution is not None and result.execution.stdout.strip() == "0.10.0"


def test_sandbox_run_packages(backend) -> None:  # type: ignore[no-untyped-def]
    sb = cellblock.Sandbox(Limits(runtime="runc", timeout_s=30), backend=backend, reap=False)
    out = sb.run("import tabulate; print(tabulate.__version__)", packages=[TABULATE])
    assert out.stdout.strip() == "0.10.0", out.stderr


def test_runner_refuses_a_wheel_whose_hash_does_not_match(backend) -> None:  # type: ignore[no-untyped-def]
    from cellblock.packages import PipResolver

    (dist,) = PipResolver().resolve([TABULATE]).distributions
    bad = WheelPayload(dist.filename, "0" * 64, dist.path.read_bytes())
    request = RunRequest(code="print(1)", limits=Limits(runtime="runc", timeout_s=30), wheels=(bad,))
    result = backend.run(request)
    assert result.stdout == "" and "does not match its sha256" in (result.error or "")


@pytest.mark.parametrize(
    ("flags", "status", "words"),
    [
        (["--with", "cellblock-no-such-package-zz"], 122, "no package named"),
        (["--with", "tabulate==99.0"], 122, "no release matching"),
        (["--with", "pycrypto==2.6.1"], 122, "only as source"),
        (["--with", "pywin32==306"], 122, "none for the sandbox image"),
        (["--with", "markupsafe==3.0.3"], 122, "has compiled code"),
        (["--with", "ecdsa==0.19.2"], 126, "known vulnerability"),
        (["--with", "x @ file:///etc/passwd"], 122, "names a URL"),
    ],
)
def test_cli_refusals_have_documented_statuses(
    tmp_path: Path, flags: list[str], status: int, words: str
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(_policy().to_yaml())
    program = tmp_path / "prog.py"
    program.write_text("open('/work/ran', 'w').write('x'); print('ran')\n")
    env = {"CELLBLOCK_AUDIT_DIR": str(tmp_path / "audit")}
    proc = _cli("run", str(program), "--policy", str(policy), *flags, env=env)
    assert proc.returncode == status, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "ran" not in proc.stdout


def test_cli_size_limit_and_denied_by_default(tmp_path: Path) -> None:
    env = {"CELLBLOCK_AUDIT_DIR": str(tmp_path / "audit")}
    program = tmp_path / "prog.py"
    program.write_text("print('ran')\n")
    small = tmp_path / "small.yaml"
    small.write_text(_policy(max_download=1024).to_yaml())
    proc = _cli("run", str(program), "--policy", str(small), "--with", TABULATE, env=env)
    assert proc.returncode == 126 and "over the policy's limit" in proc.stderr
    proc = _cli("run", str(program), "--policy", "strict", "--with", TABULATE, env=env)
    assert proc.returncode == 126 and "does not allow packages" in proc.stderr


def test_cli_requirements_file_and_wheelhouse_offline(
    tmp_path: Path, dead_index_env: dict[str, str]
) -> None:
    import shutil

    from cellblock.packages import PipResolver

    house = tmp_path / "house"
    house.mkdir()
    (dist,) = PipResolver().resolve([TABULATE]).distributions
    shutil.copyfile(dist.path, house / dist.filename)
    req = tmp_path / "requirements.txt"
    req.write_text(f"{TABULATE} --hash=sha256:{dist.sha256}\n")
    policy = tmp_path / "p.yaml"
    policy.write_text(_policy().to_yaml())
    program = tmp_path / "prog.py"
    program.write_text("import tabulate; print(tabulate.__version__)\n")
    env = {**dead_index_env, "CELLBLOCK_AUDIT_DIR": str(tmp_path / "audit")}
    proc = _cli(
        "run", str(program), "--policy", str(policy), "--requirements", str(req),
        "--wheelhouse", str(house), "--json", env=env,
    )
    # the scan service is the index, unreachable too: the result says so, the policy blocks
    assert proc.returncode == 126 and "could not be reached" in proc.stderr, proc.stderr
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text(_policy(scan_unavailable="warn").to_yaml())
    proc = _cli(
        "run", str(program), "--policy", str(lenient), "--requirements", str(req),
        "--wheelhouse", str(house), "--json", env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["stdout"].strip() == "0.10.0"
    assert out["packages"]["action"] == "warn"
    assert out["packages"]["resolution"]["source"].startswith("wheelhouse")
    assert out["packages"]["scan"]["reachable"] is False


def test_package_error_base_is_a_cellblock_error() -> None:
    assert issubclass(PackageError, cellblock.CellblockError)


@pytest.mark.parametrize("evil", ["../../../work/escaped.py", "/etc/evil.py", "a/../../x.py"])
def test_runner_refuses_a_wheel_with_an_unsafe_path(backend, evil: str) -> None:  # type: ignore[no-untyped-def]
    import hashlib
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("evil/__init__.py", "x = 1\n")
        zf.writestr(evil, "print('escaped')\n")
    data = buf.getvalue()
    wheel = WheelPayload("evil-1.0-py3-none-any.whl", hashlib.sha256(data).hexdigest(), data)
    code = "import os; print(os.path.exists('/work/escaped.py'))"
    request = RunRequest(code=code, limits=Limits(runtime="runc", timeout_s=30), wheels=(wheel,))
    result = backend.run(request)
    assert result.stdout == "" and "unsafe path" in (result.error or ""), result
