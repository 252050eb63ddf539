"""The pipeline's per-run packages step: check names, resolve on the host, scan, decide, record.

Runs after the policy decided which profile the program runs under (its ``packages:`` rules
apply) and before anything starts. Every request, resolution (names, versions, hashes), scan
result and verdict goes to the audit log; a refusal is recorded, then raised, and nothing runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cellblock.packages import (
    PackageError,
    PackageVerdict,
    PipAuditScanner,
    PipResolver,
    ResolutionError,
    Target,
    WheelCache,
    check,
    check_names,
    parse_requirement,
    refusal,
)
from cellblock.policy import Policy
from cellblock.sandbox.interface import WheelPayload

Record = Callable[[str, Mapping[str, Any]], object]  # what it returns is not used here


class BinaryWheelError(ResolutionError):
    """A per-run package has compiled code; the sandbox's tmpfs is noexec."""


class PackagesStep:
    """One per pipeline, so the resolver's and scanner's in-memory state is reused."""

    def __init__(
        self,
        *,
        wheelhouse: Path | None = None,
        cache: WheelCache | None = None,
        env: Mapping[str, str] | None = None,
        scanner: PipAuditScanner | None = None,
    ) -> None:
        self.wheelhouse = wheelhouse
        self.cache = cache or WheelCache()
        self.env = env
        self.scanner = scanner or PipAuditScanner(env=env)
        self._resolvers: dict[Target, PipResolver] = {}

    def _resolver(self, target: Target) -> PipResolver:
        if target not in self._resolvers:
            self._resolvers[target] = PipResolver(
                target, cache=self.cache, wheelhouse=self.wheelhouse, env=self.env
            )
        return self._resolvers[target]

    def prepare(
        self,
        policy: Policy,
        profile: str,
        specs: Sequence[str],
        hashes: Mapping[str, set[str]] | None,
        base: Mapping[str, Any],
        record: Record,
        target: Target | None = None,
    ) -> tuple[PackageVerdict, tuple[WheelPayload, ...]]:
        rules = policy.profiles[profile].packages.to_rules()
        record("packages.requested", {**base, "requirements": list(specs), "profile": profile})
        try:
            names = [parse_requirement(s).name for s in specs]
            check_names(names, rules, profile=profile)  # before anything is downloaded
            resolution = self._resolver(target or Target()).resolve(list(specs), hashes=hashes)
            binary = [d.filename for d in resolution.distributions if not d.pure]
            if binary:
                raise BinaryWheelError(
                    f"{', '.join(binary)} has compiled code, which per-run packages cannot "
                    "load (the sandbox's tmpfs is noexec); use an image profile with it "
                    "instead (images: in the policy)"
                )
            scan = self.scanner.scan(resolution.distributions)
            verdict = check(resolution, scan, rules, profile=profile)
        except PackageError as exc:
            record(
                "packages.refused",
                {**base, "error": str(exc), "kind": type(exc).__name__, "profile": profile},
            )
            raise
        record("packages.resolved", {**base, "profile": profile, **verdict.to_dict()})
        refused = refusal(verdict)
        if refused is not None:
            record(
                "packages.refused",
                {**base, "error": str(refused), "kind": type(refused).__name__, "profile": profile},
            )
            raise refused
        wheels = tuple(
            WheelPayload(d.filename, d.sha256, d.path.read_bytes())
            for d in resolution.distributions
        )
        return verdict, wheels
