"""Packages: host-side resolution of wheels for the sandbox image, scanning, and policy rules.

>>> from cellblock.packages import PipResolver, PipAuditScanner, PackageRules, check
>>> resolution = PipResolver().resolve(["tabulate==0.9.0"])        # doctest: +SKIP
>>> verdict = check(resolution, PipAuditScanner().scan(resolution.distributions),
...                 PackageRules(allowed=True))                     # doctest: +SKIP
"""

from cellblock.packages._cache import WheelCache, default_cache_dir, sha256_file
from cellblock.packages._pipconfig import HostPip, host_pip
from cellblock.packages._resolver import PipResolver, parse_requirement, read_requirements_file
from cellblock.packages._rules import check, check_names, popular_names, refusal, typosquat_of
from cellblock.packages._scan import PipAuditScanner
from cellblock.packages.errors import (
    EXIT_PACKAGE,
    EXIT_PACKAGE_BLOCKED,
    DeniedPackageError,
    HashMismatchError,
    IndexUnreachableError,
    InvalidSpecError,
    NoSuchVersionError,
    PackageError,
    PackageRefusedError,
    ResolutionError,
    ScanUnavailableError,
    SdistOnlyError,
    SizeLimitError,
    UnknownPackageError,
    VulnerablePackageError,
    WrongPlatformError,
)
from cellblock.packages.interface import (
    Distribution,
    Finding,
    PackageRules,
    PackageVerdict,
    Resolution,
    Resolver,
    ScanReport,
    Target,
    Vulnerability,
    VulnerabilityScanner,
)

__all__ = [
    "EXIT_PACKAGE",
    "EXIT_PACKAGE_BLOCKED",
    "DeniedPackageError",
    "Distribution",
    "Finding",
    "HashMismatchError",
    "HostPip",
    "IndexUnreachableError",
    "InvalidSpecError",
    "NoSuchVersionError",
    "PackageError",
    "PackageRefusedError",
    "PackageRules",
    "PackageVerdict",
    "PipAuditScanner",
    "PipResolver",
    "Resolution",
    "ResolutionError",
    "Resolver",
    "ScanReport",
    "ScanUnavailableError",
    "SdistOnlyError",
    "SizeLimitError",
    "Target",
    "UnknownPackageError",
    "Vulnerability",
    "VulnerabilityScanner",
    "VulnerablePackageError",
    "WheelCache",
    "WrongPlatformError",
    "check",
    "check_names",
    "default_cache_dir",
    "host_pip",
    "parse_requirement",
    "popular_names",
    "read_requirements_file",
    "refusal",
    "sha256_file",
    "typosquat_of",
]
