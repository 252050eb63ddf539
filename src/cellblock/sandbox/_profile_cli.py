"""CLI for image profiles: ``cellblock image build|info --profile NAME``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cellblock.sandbox.profiles import (
    ImageProfile,
    build_profile_image,
    find_profile,
    inspect_profile_image,
)


def _profile(args: argparse.Namespace) -> ImageProfile:
    policy: Any = None
    if getattr(args, "policy", None):
        from cellblock.policy import load_policy

        policy = load_policy(args.policy).policy
    elif args.profile not in ("base", "data"):
        from cellblock.policy import load_policy

        policy = load_policy(None).policy
    return find_profile(args.profile, policy)


def _progress(message: str) -> None:
    print(f"[cellblock] {message}", file=sys.stderr, flush=True)


def cmd_profile_build(args: argparse.Namespace) -> int:
    from cellblock.sandbox.docker import connect

    profile = _profile(args)
    info = build_profile_image(
        connect(),
        profile,
        force=args.force,
        progress=_progress,
        wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None,
    )
    print(f"{info.tag} {info.image_id}")
    return 0


def cmd_profile_info(args: argparse.Namespace) -> int:
    from cellblock.sandbox.docker import connect

    profile = _profile(args)
    info = inspect_profile_image(connect(), profile)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    elif not info.present:
        build = f"cellblock image build --profile {profile.name}"
        print(f"{info.tag}: absent (build it with `{build}`)")
    else:
        state = "current" if info.current else "STALE (rebuild with `cellblock image build`)"
        size = (info.size_bytes or 0) / (1024 * 1024)
        print(
            f"{info.tag}: {state}\n  profile {profile.name}: {profile.description}\n"
            f"  id      {info.image_id}\n  python  {info.python}\n  size    {size:.0f} MiB\n"
            f"  created {info.created}\n  packages ({len(info.components)}, CycloneDX SBOM "
            "in the image's cellblock.sbom label and /opt/cellblock/sbom.cdx.json):"
        )
        for c in info.components:
            print(f"    {c.name:<18} {c.version:<12} sha256:{c.sha256}")
    return 0 if info.present and info.current else 1
