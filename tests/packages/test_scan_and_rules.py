"""Vulnerability scanning (a real lookup) and the policy rules for packages."""

from __future__ import annotations

import pytest

from cellblock.packages import (
    DeniedPackageError,
    PackageRules,
    PipAuditScanner,
    PipResolver,
    ScanUnavailableError,
    SizeLimitError,
    VulnerablePackageError,
    check,
    check_names,
    refusal,
    typosquat_of,
)

OPEN = PackageRules(allowed=True)


def test_a_pinned_release_with_a_published_advisory_is_found(resolver: PipResolver) -> None:
    # ecdsa 0.19.2: CVE-2024-23342 (Minerva timing attack), no fixed release
    res = resolver.resolve(["ecdsa==0.19.2"])
    report = PipAuditScanner().scan(res.distributions)
    assert report.reachable, report.error
    ids = {i for v in report.vulnerabilities for i in (v.id, *v.aliases)}
    assert "CVE-2024-23342" in ids
    verdict = check(res, report, OPEN)
    assert verdict.action == "block"
    err = refusal(verdict)
    assert isinstance(err, VulnerablePackageError)
    assert "vulnerability" in str(err) and "packages.vulnerabilities" in str(err)
    warn = check(res, report, PackageRules(allowed=True, vulnerabilities="warn"))
    assert warn.action == "warn" and refusal(warn) is None


def test_a_clean_release_passes(resolver: PipResolver) -> None:
    res = resolver.resolve(["tabulate==0.9.0"])
    report = PipAuditScanner().scan(res.distributions)
    verdict = check(res, report, OPEN)
    if not report.complete:  # the index has no per-version data for an old release
        assert verdict.action == "block" and isinstance(refusal(verdict), ScanUnavailableError)
    else:
        assert verdict.action == "allow", verdict.findings


def test_unreachable_service_fails_closed_and_says_so(
    resolver: PipResolver, dead_index_env: dict[str, str], closed_port: int
) -> None:
    res = resolver.resolve(["tabulate==0.9.0"])
    scanner = PipAuditScanner(
        env=dead_index_env, osv_url=f"http://127.0.0.1:{closed_port}/v1/query", timeout_s=3
    )
    report = scanner.scan(res.distributions)
    assert not report.reachable and report.unscanned == ("tabulate==0.9.0",)
    verdict = check(res, report, OPEN)
    assert verdict.action == "block"
    err = refusal(verdict)
    assert isinstance(err, ScanUnavailableError) and "could not be reached" in str(err)
    lenient = check(res, report, PackageRules(allowed=True, scan_unavailable="warn"))
    assert lenient.action == "warn"


def test_names_denied_by_default_and_by_lists() -> None:
    with pytest.raises(DeniedPackageError, match="does not allow packages"):
        check_names(["tabulate"], PackageRules())
    rules = PackageRules(allowed=True, allow=("tab*", "six"), deny=("tabulate-evil",))
    check_names(["Tabulate", "six"], rules)
    with pytest.raises(DeniedPackageError, match="denies"):
        check_names(["Tabulate_Evil"], rules)
    with pytest.raises(DeniedPackageError, match="allow list"):
        check_names(["numpy"], rules)


def test_size_limit(resolver: PipResolver) -> None:
    res = resolver.resolve(["tabulate==0.9.0"])
    with pytest.raises(SizeLimitError, match="over the policy's limit"):
        check(res, None, PackageRules(allowed=True, max_download_bytes=1024))


@pytest.mark.parametrize(
    ("name", "popular"),
    [("reqests", "requests"), ("nunpy", "numpy"), ("pandsa", "pandas"), ("python-numpy", "numpy")],
)
def test_typosquats_are_recognised(name: str, popular: str) -> None:
    assert typosquat_of(name) == popular


@pytest.mark.parametrize("name", ["requests", "tabulate", "six", "scikit_learn", "my-own-lib"])
def test_real_names_are_not_typosquats(name: str) -> None:
    assert typosquat_of(name) is None
