"""Errors of the packages subsystem. Each message says what is wrong and what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cellblock.errors import CellblockError

if TYPE_CHECKING:
    from cellblock.packages.interface import PackageVerdict

#: Exit status of ``cellblock`` when a package cannot be resolved, fetched or verified.
EXIT_PACKAGE = 122
#: Exit status when the policy refuses a package (same as a blocked program).
EXIT_PACKAGE_BLOCKED = 126


class PackageError(CellblockError):
    """Base of every packages error. Nothing runs when one is raised."""

    exit_code = EXIT_PACKAGE


class InvalidSpecError(PackageError):
    """A requirement is not a plain ``name[==version]`` specifier (URLs, paths, options)."""


class UnknownPackageError(PackageError):
    """The index has no project of that name."""


class NoSuchVersionError(PackageError):
    """The project exists but no release matches the requested version."""


class SdistOnlyError(PackageError):
    """The matching release has no wheel; cellblock never builds an sdist."""


class WrongPlatformError(PackageError):
    """Wheels exist, but none for the sandbox image's Python and platform."""


class IndexUnreachableError(PackageError):
    """The package index (or the wheelhouse) cannot be reached or read."""


class HashMismatchError(PackageError):
    """A downloaded or cached file does not have the sha256 it was promised to have."""


class ResolutionError(PackageError):
    """pip could not resolve the requirements for another reason (conflicts, bad metadata)."""


class PackageRefusedError(PackageError):
    """The policy refuses a package (denied name, over the size limit, vulnerable, unscanned)."""

    exit_code = EXIT_PACKAGE_BLOCKED
    #: the verdict (resolution, scan, findings) when the refusal came from one
    verdict: PackageVerdict | None = None


class DeniedPackageError(PackageRefusedError):
    """The policy does not allow packages, denies this name, or allows only other names."""


class SizeLimitError(PackageRefusedError):
    """The total download is larger than the policy's ``max_download``."""


class VulnerablePackageError(PackageRefusedError):
    """A resolved distribution has a known vulnerability and the policy blocks that."""


class ScanUnavailableError(PackageRefusedError):
    """The vulnerability service could not be reached and the policy fails closed."""
