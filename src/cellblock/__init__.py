"""cellblock: run untrusted, mostly LLM-generated Python without putting the host at risk.

The small public surface::

    import cellblock
    result = cellblock.execute("print(6 * 7)")          # assess, decide, run, record
    with cellblock.Sandbox() as sb:                      # just the hardened sandbox
        sb.run("print(1)")
    from cellblock.assess import assess                  # just the static assessment
    assess("import os; os.system('id')").level

Subsystems: :mod:`cellblock.sandbox`, :mod:`cellblock.assess`, :mod:`cellblock.policy`,
:mod:`cellblock.audit`. Names are imported lazily so that ``import cellblock`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "execute": "cellblock.pipeline",
    "Pipeline": "cellblock.pipeline",
    "PipelineResult": "cellblock.pipeline",
    "Approval": "cellblock.pipeline",
    "ReviewRequest": "cellblock.pipeline",
    "Sandbox": "cellblock.sandbox",
    "Pool": "cellblock.sandbox",
    "Limits": "cellblock.sandbox",
    "ExecutionResult": "cellblock.sandbox",
    "Status": "cellblock.sandbox",
    "Assessment": "cellblock.assess",
    "Level": "cellblock.assess",
    "load_policy": "cellblock.policy",
    "AuditLog": "cellblock.audit",
    "verify": "cellblock.audit",
    "CellblockError": "cellblock.errors",
    "Session": "cellblock.session",
    "StepResult": "cellblock.session",
}

__all__ = [
    "Approval",
    "Assessment",
    "AuditLog",
    "CellblockError",
    "ExecutionResult",
    "Level",
    "Limits",
    "Pipeline",
    "PipelineResult",
    "Pool",
    "ReviewRequest",
    "Sandbox",
    "Session",
    "Status",
    "StepResult",
    "__version__",
    "execute",
    "load_policy",
    "verify",
]

if TYPE_CHECKING:
    from cellblock.assess import Assessment, Level
    from cellblock.audit import AuditLog, verify
    from cellblock.errors import CellblockError
    from cellblock.pipeline import Approval, Pipeline, PipelineResult, ReviewRequest, execute
    from cellblock.policy import load_policy
    from cellblock.sandbox import ExecutionResult, Limits, Pool, Sandbox, Status
    from cellblock.session import Session, StepResult


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cellblock' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
