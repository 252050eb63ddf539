"""Errors raised by the sandbox subsystem. Each message says what is wrong and what to do."""

from __future__ import annotations

from cellblock.errors import CellblockError


class SandboxError(CellblockError):
    """Base of every sandbox error."""


class EngineUnavailableError(SandboxError):
    """The container engine could not be reached (not running, wrong address, no permission)."""


class ImageError(SandboxError):
    """The sandbox image is missing, stale, or could not be built."""


class ImageMissingError(ImageError):
    """The sandbox image is not present on the engine."""


class ImageBuildError(ImageError):
    """Building the sandbox image failed."""


class InvalidLimitsError(SandboxError, ValueError):
    """A resource limit has an invalid value. ``field`` names it."""

    exit_code = 64  # EX_USAGE

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid limit {field!r}: {message}")
        self.field = field


class RuntimeUnavailableError(SandboxError):
    """The requested container runtime (for example gVisor's runsc) is not registered."""


class RunnerProtocolError(SandboxError):
    """The in-container runner did not answer as the protocol says; the run's outcome is unknown."""


class SourceDecodeError(SandboxError):
    """The program's source is not valid text in its declared encoding."""

    exit_code = 65  # EX_DATAERR
