"""Run untrusted code in hardened, single-use sandboxes.

The public surface: :class:`Sandbox`, :class:`Pool`, :class:`Limits`, :class:`ExecutionResult`,
:class:`Status`, the :class:`Backend`/:class:`Cell` interface and the errors.
"""

from cellblock.sandbox._sandbox import Sandbox, decode_source, default_backend
from cellblock.sandbox.errors import (
    EngineUnavailableError,
    ImageBuildError,
    ImageError,
    ImageMissingError,
    InvalidLimitsError,
    RunnerProtocolError,
    RuntimeUnavailableError,
    SandboxError,
    SourceDecodeError,
)
from cellblock.sandbox.interface import (
    Backend,
    Cell,
    ExecutionResult,
    Limits,
    RunRequest,
    Status,
    WheelPayload,
    parse_size,
)
from cellblock.sandbox.pool import Pool

__all__ = [
    "Backend",
    "Cell",
    "EngineUnavailableError",
    "ExecutionResult",
    "ImageBuildError",
    "ImageError",
    "ImageMissingError",
    "InvalidLimitsError",
    "Limits",
    "Pool",
    "RunRequest",
    "RunnerProtocolError",
    "RuntimeUnavailableError",
    "Sandbox",
    "SandboxError",
    "SourceDecodeError",
    "Status",
    "WheelPayload",
    "decode_source",
    "default_backend",
    "parse_size",
]
