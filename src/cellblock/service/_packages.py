"""Per-run packages and image profiles on the service: request caps, the image catalogue a
model reads, and package/image errors turned into service errors both transports map.

The pipeline resolves, scans and decides; this module only bounds what a caller may ask for
(so ``packages`` cannot make the host do unbounded work) and says what went wrong in terms of
the request's fields.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cellblock._images import ImageNotPermittedError
from cellblock.packages import (
    DeniedPackageError,
    PackageError,
    PackageRefusedError,
    ScanUnavailableError,
    SizeLimitError,
    VulnerablePackageError,
)
from cellblock.policy import Policy
from cellblock.sandbox.profiles import BUILTIN_PROFILES, UnknownImageProfileError, find_profile
from cellblock.service.interface import PackagesRefusedError, RequestFieldError, ServiceError

#: At most this many requirement specifiers per run (each one is a resolution on the host).
MAX_PACKAGES = 16
#: At most this many characters per specifier (``name==version`` fits easily).
MAX_SPEC_CHARS = 200

_REFUSAL_KINDS: tuple[tuple[type[PackageRefusedError], str], ...] = (
    (DeniedPackageError, "denied"),
    (SizeLimitError, "size_limit"),
    (VulnerablePackageError, "vulnerable"),
    (ScanUnavailableError, "scan_unavailable"),
)


def check_packages(packages: Sequence[str] | None) -> list[str] | None:
    """The specifiers, or :class:`RequestFieldError` when over the caps (nothing resolved)."""
    if packages is None:
        return None
    if isinstance(packages, str) or not all(isinstance(p, str) for p in packages):
        raise RequestFieldError(
            "field 'packages': give a list of requirement strings such as 'tabulate==0.10.0'",
            field="packages",
            kind="not_a_list",
        )
    if len(packages) > MAX_PACKAGES:
        raise RequestFieldError(
            f"field 'packages': {len(packages)} requirements, more than the {MAX_PACKAGES} "
            "a run may ask for; ask for fewer",
            field="packages",
            kind="too_many",
        )
    for spec in packages:
        if len(spec) > MAX_SPEC_CHARS:
            raise RequestFieldError(
                f"field 'packages': a requirement is {len(spec)} characters, over the limit of "
                f"{MAX_SPEC_CHARS}; give 'name' or 'name==version'",
                field="packages",
                kind="too_long",
            )
    return list(packages)


def check_image(policy: Policy, image: str | None) -> None:
    """Refuse an image no profile of the policy could run (the decided profile is checked again
    by the pipeline). Nothing touches the engine."""
    if image is None:
        return
    try:
        find_profile(image, policy)
    except UnknownImageProfileError as exc:
        raise RequestFieldError(
            f"field 'image': {exc}", field="image", kind="unknown_image"
        ) from None
    permitted = sorted({i for p in policy.profiles.values() for i in p.permitted_images()})
    if image not in permitted:
        raise RequestFieldError(
            f"field 'image': policy \"{policy.name}\" permits no run on the image {image!r} "
            f"(it permits: {', '.join(permitted)}); pick one of those",
            field="image",
            kind="image_not_permitted",
        )


def translate(exc: BaseException, packages: Sequence[str] | None) -> ServiceError | None:
    """The service error for a package or image error from the pipeline (None: not one)."""
    if isinstance(exc, PackageRefusedError):
        kind = next((k for cls, k in _REFUSAL_KINDS if isinstance(exc, cls)), "denied")
        verdict = exc.verdict
        findings = [f.to_dict() for f in verdict.findings] if verdict is not None else []
        distributions = (
            [
                {k: d.to_dict()[k] for k in ("name", "version", "sha256", "size", "requested")}
                for d in verdict.resolution.distributions
            ]
            if verdict is not None
            else []
        )
        if not findings:  # refused by name or size: the message is the one finding
            findings = [{"kind": kind, "action": "block", "message": str(exc)}]
        return PackagesRefusedError(
            str(exc),
            kind=kind,
            packages=list(packages or ()),
            findings=findings,
            distributions=distributions,
        )
    if isinstance(exc, PackageError):
        return RequestFieldError(f"field 'packages': {exc}", field="packages", kind=_kind(exc))
    if isinstance(exc, UnknownImageProfileError):
        return RequestFieldError(f"field 'image': {exc}", field="image", kind="unknown_image")
    if isinstance(exc, ImageNotPermittedError):
        return RequestFieldError(f"field 'image': {exc}", field="image", kind="image_not_permitted")
    return None


def _kind(exc: BaseException) -> str:
    """``UnknownPackageError`` -> ``unknown_package``."""
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def image_catalogue(policy: Policy) -> list[dict[str, Any]]:
    """Every image a run under ``policy`` may use: what it holds and which profiles permit it
    (the first entry is the default image, the one clean code runs on)."""
    default = policy.profiles[policy.decision_profiles.allow].image
    permitted: dict[str, list[str]] = {}
    for name, profile in policy.profiles.items():
        for image in profile.permitted_images():
            permitted.setdefault(image, []).append(name)
    out = []
    for image in sorted(permitted, key=lambda i: (i != default, i)):
        held = find_profile(image, policy)
        out.append(
            {
                "name": image,
                "default": image == default,
                "description": held.description,
                "packages": sorted(held.requirements),
                "permitted_by_profiles": permitted[image],
            }
        )
    return out


def describe_images(policy: Policy | None) -> str:
    """A sentence for a schema: the images a model may name, from the profiles themselves."""
    if policy is not None:
        entries = [(i["name"], i["description"], i["default"]) for i in image_catalogue(policy)]
    else:
        entries = [(p.name, p.description, p.name == "base") for p in BUILTIN_PROFILES.values()]
    listed = "; ".join(
        f"'{name}'{' (default)' if default else ''}: {text}" for name, text, default in entries
    )
    if policy is None:
        listed += ". The caller's policy says which it permits and may declare more (the policy "
        listed += "document's `images`)"
    return f"Image profile to run on, or leave empty for the default. {listed}."
