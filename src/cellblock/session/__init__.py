"""Sessions: a persistent interpreter in one fresh hardened container, every step guarded.

See docs/sessions.md.
"""

from cellblock.session._session import Session
from cellblock.session.interface import (
    STEP_STATUSES,
    Download,
    FileEntry,
    SessionClosedError,
    SessionError,
    SessionLimits,
    SessionLimitsError,
    StepResult,
)

__all__ = [
    "STEP_STATUSES",
    "Download",
    "FileEntry",
    "Session",
    "SessionClosedError",
    "SessionError",
    "SessionLimits",
    "SessionLimitsError",
    "StepResult",
]
