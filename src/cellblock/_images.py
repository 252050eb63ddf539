"""Which image profile a run uses, and what that image can import (for the pipeline)."""

from __future__ import annotations

import dataclasses
from typing import Any

from cellblock.assess import Assessment
from cellblock.policy import Policy, PolicyError
from cellblock.sandbox.profiles import ImageProfile, find_profile, image_modules


class ImageNotPermittedError(PolicyError):
    """The caller asked for an image profile the decided policy profile does not permit."""


def provisional_image(policy: Policy, requested: str | None) -> str:
    """The image the assessment's dependency check assumes before the decision: the requested
    one, else the image of the profile clean code runs under."""
    if requested:
        return requested
    return policy.profiles[policy.decision_profiles.allow].image


def chosen_image(policy: Policy, profile_name: str, requested: str | None) -> str:
    """The image a run under ``profile_name`` uses; refuses an image the profile does not list."""
    profile = policy.profiles[profile_name]
    if requested is None:
        return profile.image
    permitted = profile.permitted_images()
    if requested not in permitted:
        raise ImageNotPermittedError(
            f'policy "{policy.name}" does not permit the image {requested!r} for profile '
            f'"{profile_name}" (it permits: {", ".join(permitted)}); pick one of those or add '
            f"it to profiles.{profile_name}.images"
        )
    return requested


def profile_of(policy: Policy, name: str) -> ImageProfile:
    return find_profile(name, policy)


def modules_for(policy: Policy, name: str, client: Any = None) -> frozenset[str]:
    return image_modules(find_profile(name, policy), client)


def recheck_dependencies(assessment: Assessment, modules: frozenset[str]) -> Assessment:
    """The assessment with ``missing_dependencies`` recomputed for another image. Exact: an image
    profile only adds modules to the standard library, so every import that could be missing
    is among the previous ``dependencies`` and ``missing_dependencies``."""
    candidates = set(assessment.dependencies) | set(assessment.missing_dependencies)
    missing = tuple(sorted(m for m in candidates if m not in modules))
    return dataclasses.replace(assessment, missing_dependencies=missing)
