"""The policy model: what to assess, what to decide at each level, and how to run what is allowed.

Every model forbids unknown fields (a typo is an error naming the field) and is immutable.
Numbers are stored in machine units (bytes, seconds); the YAML file uses human units
(``256m``, ``10s``) and :meth:`Policy.to_yaml` writes them back that way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, get_args

import platformdirs
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from cellblock.network.interface import DEFAULT_BUDGET_BYTES, DEFAULT_PORTS, Egress
from cellblock.policy._units import (
    TIB,
    format_duration,
    format_size,
    parse_duration_value,
    parse_size_value,
    show,
)
from cellblock.policy.errors import UnknownLevelError
from cellblock.sandbox.errors import InvalidLimitsError
from cellblock.sandbox.interface import GIB, KIB, MIB, Limits

if TYPE_CHECKING:
    from cellblock.packages import PackageRules

Level = Literal["none", "low", "medium", "high", "critical"]
Action = Literal["allow", "restrict", "review", "block"]
Runtime = Literal["runc", "runsc", "auto"]
DeepMode = Literal["never", "auto", "always"]
Seccomp = Literal["cellblock", "docker-default"]
NetworkMode = Literal["none"]
PackageAction = Literal["warn", "review", "block"]
ProfileNetworkMode = Literal["none", "allowlist"]

LEVELS: tuple[Level, ...] = get_args(Level)
ACTIONS: tuple[Action, ...] = get_args(Action)
RUNNING_ACTIONS: tuple[Action, ...] = ("allow", "restrict", "review")
#: Image profiles cellblock ships (``cellblock.sandbox.image.BUILTIN_PROFILES`` defines them).
BUILTIN_IMAGES: tuple[str, ...] = ("base", "data")
# Network modes that are planned but not supported yet: named in the error so users know.
PLANNED_NETWORK_MODES = ("bridge", "egress-proxy")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RULE_RE = re.compile(r"^\S{1,200}$")
_PACKAGE_GLOB_RE = re.compile(r"^[A-Za-z0-9*?][A-Za-z0-9._*?\[\]-]{0,99}$")


def _fail(expected: str, found: str, *, subpath: tuple[str, ...] = (), hint: str = "") -> Exception:
    """A pydantic error carrying the parts of a policy issue (mapped to lines by the loader)."""
    return PydanticCustomError(
        "policy",
        "expected {expected}, got {found}{hint_text}",
        {
            "expected": expected,
            "found": found,
            "hint": hint,
            "hint_text": f"; {hint}" if hint else "",
            "subpath": subpath,
        },
    )


# -- field types ---------------------------------------------------------------------------------


class _Unit:
    """Marks a field for human formatting in :meth:`Policy.to_yaml`."""

    def __init__(self, kind: Literal["size", "duration"]) -> None:
        self.kind = kind


def _size(lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        n = parse_size_value(value)
        if n is None:
            raise _fail("a size such as 256m", show(value))
        if not lo <= n <= hi:
            raise _fail(f"a size between {format_size(lo)} and {format_size(hi)}", show(value))
        return n

    return check


def _duration(lo: float, hi: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        s = parse_duration_value(value)
        if s is None:
            raise _fail("a duration such as 10s, 1.5s or 2m", show(value))
        if not lo <= s <= hi:
            raise _fail(
                f"a duration between {format_duration(lo)} and {format_duration(hi)}", show(value)
            )
        return s

    return check


def _integer(lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(f"an integer between {lo} and {hi}", show(value))
        if not lo <= value <= hi:
            raise _fail(f"an integer between {lo} and {hi}", show(value))
        return value

    return check


def _number(lo: float, hi: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(f"a number between {lo:g} and {hi:g}", show(value))
        if not lo <= value <= hi:
            raise _fail(f"a number between {lo:g} and {hi:g}", show(value))
        return float(value)

    return check


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def maybe(value: Any) -> Any:
        return None if value is None else check(value)

    return maybe


def _check_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise _fail(
            "a name of letters, digits, '.', '_' or '-' (at most 64, starting with a letter or "
            "digit)",
            show(value),
        )
    return value


def _check_rule_id(value: Any) -> str:
    if not isinstance(value, str) or not _RULE_RE.match(value):
        raise _fail("a rule id or category name (no spaces, at most 200)", show(value))
    return value


def _check_path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value.strip():
        raise _fail("a path", show(value))
    return Path(value)


def _check_package_glob(value: Any) -> str:
    if not isinstance(value, str) or not _PACKAGE_GLOB_RE.match(value):
        raise _fail("a package name or glob such as numpy or types-*", show(value))
    return value


def _check_requirement(value: Any) -> str:
    from cellblock.packages import PackageError, parse_requirement

    if not isinstance(value, str):
        raise _fail("a requirement such as tabulate==0.9.0", show(value))
    try:
        parse_requirement(value)
    except PackageError:
        raise _fail("a requirement such as tabulate==0.9.0", show(value)) from None
    return value


def _check_module(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]{0,99}", value):
        raise _fail("a module name such as pandas", show(value))
    return value


def _check_network(value: Any) -> str:
    if value == "none":
        return "none"
    if value in PLANNED_NETWORK_MODES:
        raise _fail('"none"', show(value), hint="that network mode is not supported yet")
    raise _fail('"none"', show(value))


SIZE = _Unit("size")
DURATION = _Unit("duration")
Name = Annotated[str, BeforeValidator(_check_name)]
RuleId = Annotated[str, BeforeValidator(_check_rule_id)]
OptionalPath = Annotated[Path | None, BeforeValidator(_optional(_check_path))]
Network = Annotated[NetworkMode, BeforeValidator(_check_network)]
PackageGlob = Annotated[str, BeforeValidator(_check_package_glob)]
RequirementSpec = Annotated[str, BeforeValidator(_check_requirement)]
ModuleName = Annotated[str, BeforeValidator(_check_module)]


def _check_profile_network(value: Any) -> str:
    if value in ("none", "allowlist"):
        return str(value)
    raise _fail('"none" or "allowlist"', show(value))


def _check_allow(value: Any) -> list[str]:
    from cellblock.network.interface import InvalidEgressError, check_allow_entry

    if not isinstance(value, list):
        raise _fail("a list of host names", show(value))
    out: list[str] = []
    for i, entry in enumerate(value):
        try:
            out.append(check_allow_entry(entry))
        except InvalidEgressError as exc:
            raise _fail(
                "a host name, a *.suffix pattern or $pip-index",
                show(entry),
                subpath=(str(i),),
                hint=str(exc).split(": ", 1)[-1],
            ) from None
    return out


def _check_ports(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _fail("a list of ports", show(value))
    return [_integer(1, 65535)(port) for port in value]


def _check_ca_bundle(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail('"pip", "image" or the path of a PEM file', show(value))
    return value


ProfileNetwork = Annotated[ProfileNetworkMode, BeforeValidator(_check_profile_network)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# -- sections ------------------------------------------------------------------------------------


class Assessment(_Model):
    """Which analyzers run and how their findings are graded."""

    deep: DeepMode = "auto"
    rule_levels: dict[RuleId, Level] = Field(default_factory=dict)
    category_levels: dict[RuleId, Level] = Field(default_factory=dict)
    allow_skip: bool = False


class Decisions(_Model):
    """The action for each assessment level. Never looser as the level rises."""

    none: Action = Field(description='"allow", "restrict", "review" or "block"')
    low: Action = Field(description='"allow", "restrict", "review" or "block"')
    medium: Action = Field(description='"allow", "restrict", "review" or "block"')
    high: Action = Field(description='"allow", "restrict", "review" or "block"')
    critical: Action = Field(description='"allow", "restrict", "review" or "block"')

    @model_validator(mode="after")
    def _monotonic(self) -> Decisions:
        previous_level: Level = "none"
        for level in LEVELS:
            action, before = self.for_level(level), self.for_level(previous_level)
            if ACTIONS.index(action) < ACTIONS.index(before):
                allowed = [f'"{a}"' for a in ACTIONS[ACTIONS.index(before) :]]
                raise _fail(
                    " or ".join(allowed) + " (decisions must not get looser as the level rises; "
                    f'{previous_level} is "{before}")',
                    show(action),
                    subpath=(level,),
                )
            previous_level = level
        return self

    def for_level(self, level: Level) -> Action:
        action: Action = getattr(self, level)
        return action


class DecisionProfiles(_Model):
    """Which profile each running action uses (``review`` runs under its profile once approved)."""

    allow: Name = Field(description="the name of a profile")
    restrict: Name = Field(description="the name of a profile")
    review: Name = Field(description="the name of a profile")


class Packages(_Model):
    """Per-run packages a profile admits (``--with``, ``packages=``). Off unless allowed."""

    allowed: bool = False
    allow: list[PackageGlob] = Field(default_factory=list)
    deny: list[PackageGlob] = Field(default_factory=list)
    max_download: Annotated[int, BeforeValidator(_size(0, TIB)), SIZE] = 64 * MIB
    vulnerabilities: PackageAction = "block"
    scan_unavailable: PackageAction = "block"
    typosquat: PackageAction = "review"

    def to_rules(self) -> PackageRules:
        from cellblock.packages import PackageRules

        return PackageRules(
            allowed=self.allowed,
            allow=tuple(self.allow),
            deny=tuple(self.deny),
            max_download_bytes=self.max_download,
            vulnerabilities=self.vulnerabilities,
            scan_unavailable=self.scan_unavailable,
            typosquat=self.typosquat,
        )


class ImageDefinition(_Model):
    """A user-declared image profile: the base image plus these wheels (built offline)."""

    description: str = ""
    requirements: list[RequirementSpec] = Field(description="a list of requirements")
    preload: list[ModuleName] = Field(default_factory=list)


class Profile(_Model):
    """A named set of resource limits. Missing fields take the sandbox defaults."""

    cpus: Annotated[float, BeforeValidator(_number(0.01, 1024))] = 1.0
    memory: Annotated[int, BeforeValidator(_size(16 * MIB, TIB)), SIZE] = 256 * MIB
    swap: Annotated[int, BeforeValidator(_size(0, TIB)), SIZE] = 0
    pids: Annotated[int, BeforeValidator(_integer(8, 1_000_000))] = 64
    nofile: Annotated[int, BeforeValidator(_integer(16, 1_048_576))] = 256
    timeout: Annotated[float, BeforeValidator(_duration(0.1, 24 * 3600)), DURATION] = 10.0
    tmpfs: Annotated[int, BeforeValidator(_size(1 * MIB, TIB)), SIZE] = 64 * MIB
    tmp: Annotated[int, BeforeValidator(_size(1 * MIB, TIB)), SIZE] = 16 * MIB
    stdout: Annotated[int, BeforeValidator(_size(0, GIB)), SIZE] = 1 * MIB
    stderr: Annotated[int, BeforeValidator(_size(0, GIB)), SIZE] = 1 * MIB
    max_code: Annotated[int, BeforeValidator(_size(1, 256 * MIB)), SIZE] = 4 * MIB
    runtime: Runtime = "auto"
    network: ProfileNetwork = "none"
    #: the image profile a run uses unless the caller picks another from ``images``
    image: Name = "base"
    #: further image profiles a caller may pick (``--image``, ``image=``)
    images: list[Name] = Field(default_factory=list)
    packages: Packages = Field(default_factory=Packages)

    _LIMITS_FIELD: ClassVar[dict[str, str]] = {
        "cpus": "cpus",
        "memory": "memory_bytes",
        "swap": "swap_bytes",
        "pids": "pids",
        "nofile": "nofile",
        "timeout": "timeout_s",
        "tmpfs": "tmpfs_bytes",
        "tmp": "tmp_bytes",
        "stdout": "stdout_bytes",
        "stderr": "stderr_bytes",
        "max_code": "max_code_bytes",
        "runtime": "runtime",
        "network": "network",
    }

    @model_validator(mode="after")
    def _valid_limits(self) -> Profile:
        # A backstop: the field bounds above mirror Limits, so this should never fire.
        try:
            self.to_limits(frozenset({"runc"}))
        except InvalidLimitsError as exc:
            back = {v: k for k, v in self._LIMITS_FIELD.items()}
            field = back.get(exc.field, exc.field)
            raise _fail("values the sandbox accepts", exc.message, subpath=(field,)) from None
        return self

    def permitted_images(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([self.image, *self.images]))

    def resolve_runtime(self, available: frozenset[str]) -> str:
        """The concrete runtime: ``auto`` is ``runsc`` when the engine offers it, else ``runc``.

        An explicit ``runc`` or ``runsc`` is returned as is; if the engine lacks it, the sandbox
        refuses the run (``RuntimeUnavailableError``).
        """
        if self.runtime == "auto":
            if self.network == "allowlist":
                return "runc"  # gVisor is registered here without networking (docs/network.md)
            return "runsc" if "runsc" in available else "runc"
        return self.runtime

    def to_limits(self, runtimes: frozenset[str] | None = None) -> Limits:
        """The sandbox limits of this profile.

        ``runtimes`` is what the engine offers (``Backend.runtimes()``). When it is ``None`` an
        ``auto`` runtime resolves to ``runsc``: fail closed rather than silently drop gVisor.
        """
        available = frozenset({"runsc"}) if runtimes is None else runtimes
        return Limits(
            timeout_s=self.timeout,
            cpus=self.cpus,
            memory_bytes=self.memory,
            swap_bytes=self.swap,
            pids=self.pids,
            nofile=self.nofile,
            tmpfs_bytes=self.tmpfs,
            tmp_bytes=self.tmp,
            stdout_bytes=self.stdout,
            stderr_bytes=self.stderr,
            max_code_bytes=self.max_code,
            runtime=self.resolve_runtime(available),
            network=self.network,
            # the policy's network block replaces this in Policy.decide
            egress=Egress() if self.network == "allowlist" else None,
        )


class Hardening(_Model):
    """Hardening flags. The defaults are the strictest; anything else is a recorded loosening."""

    network: Network = "none"
    read_only_root: bool = True
    seccomp: Seccomp = "cellblock"
    no_new_privileges: bool = True


class NetworkSettings(_Model):
    """What profiles with ``network: allowlist`` may reach, through the egress proxy.

    ``allow``: exact names, ``*.suffix`` patterns, and ``$pip-index`` (the hosts of the index
    the host's pip uses). ``budget``: bytes both ways over all connections of one run.
    ``ca_bundle``: ``pip`` (the bundle the host's pip trusts), ``image`` (the image's own) or a
    PEM file, given to the cell so its clients trust what the host trusts.
    """

    allow: Annotated[list[str], BeforeValidator(_check_allow)] = Field(default_factory=list)
    ports: Annotated[list[int], BeforeValidator(_check_ports)] = Field(
        default_factory=lambda: list(DEFAULT_PORTS)
    )
    budget: Annotated[int, BeforeValidator(_size(KIB, TIB)), SIZE] = DEFAULT_BUDGET_BYTES
    ca_bundle: Annotated[str, BeforeValidator(_check_ca_bundle)] = "pip"

    def to_egress(self) -> Egress:
        """The sandbox's :class:`Egress` (``$pip-index`` stays symbolic until the run)."""
        from cellblock.network import _pip
        from cellblock.network.interface import InvalidEgressError

        bundle: str | None
        if self.ca_bundle == "image":
            bundle = None
        elif self.ca_bundle == "pip":
            found = _pip.ca_bundle_path()
            bundle = None if found is None else str(found)
        else:
            path = Path(self.ca_bundle).expanduser()
            if not path.is_file():
                raise InvalidEgressError(
                    "ca_bundle", f"{self.ca_bundle} is not a file; give a PEM file, pip or image"
                )
            bundle = str(path)
        return Egress(
            allow=tuple(self.allow),
            ports=tuple(self.ports),
            budget_bytes=self.budget,
            ca_bundle=bundle,
        )


class AuditSettings(_Model):
    """Where and how the audit log records. Maps onto ``AuditLog.open``."""

    directory: OptionalPath = None
    signing_key: OptionalPath = None
    witness: OptionalPath = None
    durable: bool = True
    required: bool = True
    checkpoint_every: Annotated[int, BeforeValidator(_integer(1, 10_000_000))] = 1000
    checkpoint_interval: Annotated[float, BeforeValidator(_duration(0.1, 7 * 86400)), DURATION] = (
        60.0
    )
    rotate_size: Annotated[int | None, BeforeValidator(_optional(_size(64 * KIB, TIB))), SIZE] = (
        None
    )
    rotate_age: Annotated[
        float | None, BeforeValidator(_optional(_duration(1, 366 * 86400))), DURATION
    ] = None
    retention_days: Annotated[int, BeforeValidator(_integer(1, 36500))] = 30

    def resolve_directory(self, env: Mapping[str, str] | None = None) -> Path:
        """``directory``, else ``$CELLBLOCK_AUDIT_DIR``, else ``<user data dir>/audit``."""
        if self.directory is not None:
            return self.directory
        environ = os.environ if env is None else env
        if environ.get("CELLBLOCK_AUDIT_DIR"):
            return Path(environ["CELLBLOCK_AUDIT_DIR"]).expanduser()
        return Path(platformdirs.user_data_dir("cellblock")) / "audit"

    def open_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AuditLog.open`` (without directory, signing key and witness,
        which the caller resolves and loads). Unset rotation settings are left to its defaults."""
        kwargs: dict[str, Any] = {
            "durable": self.durable,
            "checkpoint_every": self.checkpoint_every,
            "checkpoint_interval_s": self.checkpoint_interval,
            "retention_days": self.retention_days,
        }
        if self.rotate_size is not None:
            kwargs["rotate_bytes"] = self.rotate_size
        if self.rotate_age is not None:
            kwargs["rotate_age_s"] = self.rotate_age
        return kwargs


class Pool(_Model):
    """The warm pool of prepared cells."""

    enabled: bool = False
    size: Annotated[int, BeforeValidator(_integer(0, 64))] = 2
    idle_timeout: Annotated[float, BeforeValidator(_duration(1, 24 * 3600)), DURATION] = 300.0


# -- the policy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the policy decided for one assessment level, and why."""

    action: Action
    level: Level
    profile: str | None  # None for block
    limits: Limits | None  # None for block
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "level": self.level,
            "profile": self.profile,
            "limits": None if self.limits is None else self.limits.to_dict(),
            "reason": self.reason,
        }


# Loosenings outside ``hardening``: (section, field, strict value).
_OTHER_LOOSENINGS: tuple[tuple[str, str, Any], ...] = (
    ("assessment", "allow_skip", False),
    ("audit", "required", True),
    ("audit", "durable", True),
)


class Policy(_Model):
    """A whole policy. Build one with :func:`cellblock.policy.load_policy` or :meth:`from_dict`."""

    version: Literal[1] = Field(description="1")
    name: Name = Field(description="a name for the policy")
    description: str = ""
    assessment: Assessment = Field(default_factory=Assessment)
    decisions: Decisions = Field(description="a mapping of each level to a decision")
    profiles: dict[Name, Profile] = Field(description="a mapping of profile names to profiles")
    decision_profiles: DecisionProfiles = Field(
        description="a mapping of allow, restrict and review to profile names"
    )
    hardening: Hardening = Field(default_factory=Hardening)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    pool: Pool = Field(default_factory=Pool)
    images: dict[Name, ImageDefinition] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _images_exist(self) -> Policy:
        for name in self.images:
            if name in BUILTIN_IMAGES:
                raise _fail(
                    "a name that is not a built-in image profile",
                    show(name),
                    subpath=("images", name),
                    hint=f"{', '.join(BUILTIN_IMAGES)} are built in; choose another name",
                )
        known = [*BUILTIN_IMAGES, *sorted(self.images)]
        for pname, profile in self.profiles.items():
            for i, ref in enumerate([profile.image, *profile.images]):
                if ref not in known:
                    where = ("image",) if i == 0 else ("images", i - 1)
                    raise _fail(
                        f"an image profile ({', '.join(known)})",
                        show(ref),
                        subpath=("profiles", pname, *where),
                        hint="declare it under images:",
                    )
        return self

    @model_validator(mode="after")
    def _profiles_exist(self) -> Policy:
        names = sorted(self.profiles)
        for action in RUNNING_ACTIONS:
            ref: str = getattr(self.decision_profiles, action)
            if ref not in self.profiles:
                available = ", ".join(f'"{n}"' for n in names) if names else "none defined"
                raise _fail(
                    f"the name of a profile ({available})",
                    show(ref),
                    subpath=("decision_profiles", action),
                )
        return self

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<policy>") -> Policy:
        """Validate plain data; raise :class:`PolicyValidationError` (no line numbers)."""
        from cellblock.policy._loader import issues_from_validation_error
        from cellblock.policy.errors import PolicyValidationError

        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PolicyValidationError(
                source, issues_from_validation_error(exc, source, data, {}, {})
            ) from None

    # -- decisions -----------------------------------------------------------------------------

    def profile_for(self, action: str) -> Profile | None:
        """The profile an action runs under; ``None`` for ``block``."""
        if action == "block":
            return None
        if action not in RUNNING_ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        return self.profiles[getattr(self.decision_profiles, action)]

    def decide(
        self,
        level: str,
        *,
        runtimes: frozenset[str] | None = None,
        cause: str | None = None,
    ) -> Decision:
        """The decision for an assessment level (a string or a ``str`` enum such as assess.Level).

        ``runtimes`` is what the engine offers, used to resolve ``runtime: auto`` (see
        :meth:`Profile.to_limits`). ``cause`` (for example the rule that set the level) is added
        to the reason.
        """
        value = getattr(level, "value", level)
        if value not in LEVELS:
            raise UnknownLevelError(
                f"unknown assessment level {value!r}; expected one of {', '.join(LEVELS)}"
            )
        lvl: Level = value
        action = self.decisions.for_level(lvl)
        because = f"assessed {lvl}" + (f" ({cause})" if cause else "")
        if action == "block":
            return Decision(
                action, lvl, None, None, f'{because}; policy "{self.name}" blocks level {lvl}'
            )
        profile_name: str = getattr(self.decision_profiles, action)
        limits = self.profiles[profile_name].to_limits(runtimes)
        if limits.network == "allowlist":
            limits = limits.replace(egress=self.network.to_egress())
        verb = {
            "allow": "allows",
            "restrict": "restricts",
            "review": "requires review for",
        }[action]
        tail = " once approved" if action == "review" else ""
        reason = (
            f'{because}; policy "{self.name}" {verb} level {lvl}; '
            f'runs under profile "{profile_name}"{tail}'
        )
        return Decision(action, lvl, profile_name, limits, reason)

    def loosenings(self) -> list[str]:
        """Dotted names of every hardening field (and ``assessment.allow_skip``,
        ``audit.required``, ``audit.durable``) that differs from its strict default."""
        strict = Hardening()
        found = [
            f"hardening.{name}"
            for name in Hardening.model_fields
            if getattr(self.hardening, name) != getattr(strict, name)
        ]
        for section, name, strict_value in _OTHER_LOOSENINGS:
            if getattr(getattr(self, section), name) != strict_value:
                found.append(f"{section}.{name}")
        for pname, profile in sorted(self.profiles.items()):
            for field in ("vulnerabilities", "scan_unavailable"):
                if profile.packages.allowed and getattr(profile.packages, field) != "block":
                    found.append(f"profiles.{pname}.packages.{field}")
        found += [
            f"profiles.{name}.network"
            for name, profile in sorted(self.profiles.items())
            if profile.network != "none"
        ]
        return found

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data in machine units (bytes, seconds); ``from_dict`` reads it back."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data

    def to_human_dict(self) -> dict[str, Any]:
        """Like :meth:`to_dict` but with sizes and durations as ``256m`` and ``10s``."""
        return _humanize(self)

    def to_yaml(self) -> str:
        """The policy as a YAML file in human units (comments are not kept)."""
        return yaml.safe_dump(self.to_human_dict(), sort_keys=False, allow_unicode=True)

    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical JSON of :meth:`to_dict` (for the audit log)."""
        canonical = json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _humanize(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        unit = next((m for m in info.metadata if isinstance(m, _Unit)), None)
        out[name] = _humanize_value(value, unit)
    return out


def _humanize_value(value: Any, unit: _Unit | None) -> Any:
    if isinstance(value, BaseModel):
        return _humanize(value)
    if isinstance(value, dict):
        return {k: _humanize_value(v, None) for k, v in value.items()}
    if value is None:
        return None
    if unit is not None and unit.kind == "size":
        text = format_size(value)
        return int(text) if text.isdigit() else text
    if unit is not None and unit.kind == "duration":
        return format_duration(value)
    if isinstance(value, Path):
        return str(value)
    return value
