"""Apply a policy's ``packages:`` rules to requested names, a resolution and its scan."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

from packaging.utils import canonicalize_name

from cellblock.packages.errors import (
    DeniedPackageError,
    PackageRefusedError,
    ScanUnavailableError,
    SizeLimitError,
    VulnerablePackageError,
)
from cellblock.packages.interface import (
    ACTION_ORDER,
    Action,
    Finding,
    PackageRules,
    PackageVerdict,
    Resolution,
    ScanReport,
)


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def check_names(names: Iterable[str], rules: PackageRules, *, profile: str = "") -> None:
    """Refuse (before anything is downloaded) a name the rules do not admit."""
    where = f' in profile "{profile}"' if profile else ""
    for raw in names:
        name = canonicalize_name(raw)
        if not rules.allowed:
            raise DeniedPackageError(
                f"the policy does not allow packages{where}; remove --with/packages= or use a "
                "policy whose profile sets packages.allowed: true"
            )
        denied = next((g for g in rules.deny if _match(name, g)), None)
        if denied:
            raise DeniedPackageError(
                f"the policy denies the package {name!r}{where} (deny: {denied}); choose another"
            )
        if rules.allow and not any(_match(name, g) for g in rules.allow):
            raise DeniedPackageError(
                f"the package {name!r} is not on the policy's allow list{where} "
                f"({', '.join(rules.allow)}); choose an allowed one"
            )


def _match(name: str, pattern: str) -> bool:
    # normalise the pattern as PEP 503 does names, keeping its globs
    glob = re.sub(r"[-_.]+", "-", pattern.strip()).lower()
    return fnmatch.fnmatchcase(name, glob)


@lru_cache(maxsize=1)
def popular_names() -> frozenset[str]:
    text = resources.files("cellblock.packages").joinpath("popular.txt").read_text("utf-8")
    return frozenset(
        canonicalize_name(ln.strip()) for ln in text.splitlines() if ln.strip() and ln[0] != "#"
    )


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by one insertion, deletion, substitution or swap."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and (
            a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def typosquat_of(name: str) -> str | None:
    """The popular package ``name`` looks like a typo of, or None."""
    canon = canonicalize_name(name)
    popular = popular_names()
    if canon in popular or len(canon) < 4:
        return None
    squashed = canon.replace("-", "")
    for known in sorted(popular):
        if _one_edit(canon, known) or (squashed == known.replace("-", "") and canon != known):
            return known
        if canon in (f"python-{known}", f"{known}-python", f"py{known}") and len(known) >= 5:
            return known
    return None


def _stricter(a: Action, b: Action) -> Action:
    return a if ACTION_ORDER.index(a) >= ACTION_ORDER.index(b) else b


def check(
    resolution: Resolution, scan: ScanReport | None, rules: PackageRules, *, profile: str = ""
) -> PackageVerdict:
    """The verdict for a resolution. Names and size refusals raise; the rest are findings."""
    check_names((d.name for d in resolution.distributions), rules, profile=profile)
    if resolution.total_bytes > rules.max_download_bytes:
        raise SizeLimitError(
            f"the packages total {_mib(resolution.total_bytes)}, over the policy's limit of "
            f"{_mib(rules.max_download_bytes)} (packages.max_download); request fewer or "
            "smaller packages"
        )
    findings: list[Finding] = []
    for dist in resolution.distributions:
        if dist.requested:
            squat = typosquat_of(dist.name)
            if squat:
                findings.append(
                    Finding(
                        "typosquat",
                        rules.typosquat,
                        f"{dist.name!r} looks like a typo of the popular package {squat!r}",
                    )
                )
    if scan is not None:
        for v in scan.vulnerabilities:
            fix = f"; fixed in {', '.join(v.fix_versions)}" if v.fix_versions else "; no fix yet"
            findings.append(
                Finding(
                    "vulnerability",
                    rules.vulnerabilities,
                    f"{v.name} {v.version} has the known vulnerability {v.id}{fix}",
                )
            )
        if not scan.complete:
            what = "could not be reached" if not scan.reachable else "had no data"
            names = ", ".join(scan.unscanned) or "the packages"
            findings.append(
                Finding(
                    "unscanned",
                    rules.scan_unavailable,
                    f"the vulnerability service ({scan.service}) {what} for {names}"
                    + (f": {scan.error}" if scan.error else ""),
                )
            )
    action: Action = "allow"
    for f in findings:
        action = _stricter(action, f.action)
    return PackageVerdict(action, resolution, scan, tuple(findings))


def refusal(verdict: PackageVerdict) -> PackageRefusedError | None:
    """The error for a blocked verdict (the first blocking finding names it)."""
    if verdict.action != "block":
        return None
    first = next(f for f in verdict.findings if f.action == "block")
    tail = "; the policy blocks it (packages.{})"
    error: PackageRefusedError
    if first.kind == "vulnerability":
        error = VulnerablePackageError(first.message + tail.format("vulnerabilities"))
    elif first.kind == "unscanned":
        error = ScanUnavailableError(first.message + tail.format("scan_unavailable"))
    else:
        error = DeniedPackageError(first.message + tail.format("typosquat"))
    error.verdict = verdict  # every finding, for callers that show them (the service)
    return error
