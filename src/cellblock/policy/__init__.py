"""Policies: what to assess, what to decide at each level, and how to run what is allowed.

A policy is a YAML file validated against :class:`Policy`. Find the one in force with
:func:`load_policy`; turn an assessment level into a :class:`Decision` with :meth:`Policy.decide`.
See ``docs/policy.md``.
"""

from __future__ import annotations

from cellblock.policy._loader import (
    CWD_FILE,
    DEFAULT_PRESET,
    ENV_VAR,
    LoadedPolicy,
    load_policy,
    load_policy_file,
    load_preset,
    parse_policy,
    preset_names,
    preset_text,
    user_policy_path,
)
from cellblock.policy.errors import (
    Issue,
    PolicyError,
    PolicyNotFoundError,
    PolicyValidationError,
    UnknownLevelError,
)
from cellblock.policy.model import (
    ACTIONS,
    LEVELS,
    Action,
    Assessment,
    AuditSettings,
    Decision,
    DecisionProfiles,
    Decisions,
    DeepMode,
    Hardening,
    Level,
    Policy,
    Pool,
    Profile,
    Runtime,
)

__all__ = [
    "ACTIONS",
    "CWD_FILE",
    "DEFAULT_PRESET",
    "ENV_VAR",
    "LEVELS",
    "Action",
    "Assessment",
    "AuditSettings",
    "Decision",
    "DecisionProfiles",
    "Decisions",
    "DeepMode",
    "Hardening",
    "Issue",
    "Level",
    "LoadedPolicy",
    "Policy",
    "PolicyError",
    "PolicyNotFoundError",
    "PolicyValidationError",
    "Pool",
    "Profile",
    "Runtime",
    "UnknownLevelError",
    "load_policy",
    "load_policy_file",
    "load_preset",
    "parse_policy",
    "preset_names",
    "preset_text",
    "user_policy_path",
]
