"""Image profiles: the sandbox image plus a pinned set of wheels, built offline.

``base`` is the sandbox image itself (the standard library only). Any other profile is built
FROM it: the host resolves the profile's requirements with its own pip for the image's Python
and platform (wheels only, hash-checked, see :mod:`cellblock.packages`), puts the wheels and a
``--require-hashes`` lock in the build context, and the build installs them with
``pip --no-index`` (pip itself runs from its own wheel) with networking off. The image records
what it holds: a manifest (name, version, sha256 and top-level modules of every distribution)
and a CycloneDX SBOM, both as files under ``/opt/cellblock`` and as labels that ``cellblock
image info`` reads without starting a container.

The tag is content-addressed like the base image's: it hashes the base tag (Dockerfile, runner,
uids) with the profile's definition, so a changed pin or runner gives a new tag.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellblock import __version__
from cellblock.sandbox.errors import ImageBuildError, ImageMissingError
from cellblock.sandbox.image import (
    IMAGE_REPOSITORY,
    IMAGE_TAG,
    RECIPE_LABEL,
    SANDBOX_UID,
    Progress,
    _print_progress,
    _run_build,
    build_image,
    inspect_image,
)

PROFILE_LABEL = "cellblock.profile"
DEFINITION_LABEL = "cellblock.profile.definition"
MODULES_LABEL = "cellblock.modules"
SBOM_LABEL = "cellblock.sbom"
MANIFEST_PATH = "/opt/cellblock/image.json"
SBOM_PATH = "/opt/cellblock/sbom.cdx.json"
#: pip, run from its wheel to install the others; used in the build only, not in the image
BUILD_PIP = "pip==26.3"
#: BLAS and OpenMP pools off: one program, a CPU quota, and a runner that forks after import
_THREAD_ENV = (("OPENBLAS_NUM_THREADS", "1"), ("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1"))


class UnknownImageProfileError(ImageMissingError):
    """No built-in or declared image profile has that name (a usage error)."""

    exit_code = 64


@dataclass(frozen=True)
class ImageProfile:
    """A named image: the sandbox image plus ``requirements`` (pin every version)."""

    name: str
    requirements: tuple[str, ...] = ()
    preload: tuple[str, ...] = ()  # imported by the warm runner before the program's fork
    env: tuple[tuple[str, str], ...] = ()
    description: str = ""

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requirements": sorted(self.requirements),
            "preload": list(self.preload),
            "env": [list(kv) for kv in self.env],
        }


BASE = ImageProfile("base", description="Python's standard library only")
DATA = ImageProfile(
    "data",
    requirements=(
        # what people ask for
        "numpy==2.4.6",
        "pandas==3.1.1",
        "scipy==1.17.1",
        "scikit-learn==1.9.1",
        "matplotlib==3.11.2",
        "pillow==13.0.0",
        "seaborn==0.13.2",
        "sympy==1.14.0",
        "networkx==3.6.1",
        "tabulate==0.10.0",
        "openpyxl==3.1.5",
        "pyyaml==6.0.4",
        "python-dateutil==4.0.0",
        # their dependencies, pinned so the tag names exactly one set of files
        "cloudpickle==3.1.3",
        "contourpy==1.3.3",
        "cycler==0.12.1",
        "et-xmlfile==2.0.0",
        "fonttools==4.68.0",
        "joblib==1.6.0",
        "kiwisolver==1.5.1",
        "mpmath==1.3.0",
        "narwhals==2.29.0",
        "packaging==26.4",
        "pyparsing==3.3.3",
        "threadpoolctl==3.8.0",
        "tzdata==2026.6",
    ),
    preload=("numpy", "pandas"),
    env=(("MPLBACKEND", "Agg"), *_THREAD_ENV),
    description="numpy, pandas, scipy, scikit-learn, matplotlib (Agg), pillow, seaborn, sympy, "
    "networkx, tabulate, openpyxl, pyyaml",
)
BUILTIN_PROFILES: Mapping[str, ImageProfile] = {"base": BASE, "data": DATA}
#: Top-level modules the data profile adds (the image's ``cellblock.modules`` label; a test
#: checks the built image against this list, so the assessment needs no engine to know it).
DATA_MODULES: frozenset[str] = frozenset(
    {
        "PIL", "_yaml", "cloudpickle", "contourpy", "cycler", "dateutil", "et_xmlfile",
        "fontTools", "isympy", "joblib", "kiwisolver", "matplotlib", "mpl_toolkits",
        "mpmath", "narwhals", "networkx", "numpy", "openpyxl", "packaging", "pandas",
        "pylab", "pyparsing", "scipy", "seaborn", "sklearn", "sympy", "tabulate",
        "threadpoolctl", "tzdata", "yaml",
    }
)


def image_modules(profile: ImageProfile, client: Any = None) -> frozenset[str]:
    """Top-level modules importable on a profile's image: the standard library the image ships
    plus what its wheels install (from the built image's label when an engine is at hand,
    else the built-in list, else the requirement names)."""
    from cellblock.assess import IMAGE_MODULES

    if profile.name == "base":
        return IMAGE_MODULES
    if profile.name == "data" and profile == DATA:
        return IMAGE_MODULES | DATA_MODULES
    if client is not None:
        info = inspect_profile_image(client, profile)
        if info.present and info.current:
            return IMAGE_MODULES | frozenset(info.modules)
    from packaging.requirements import Requirement

    guessed = {Requirement(r).name.lower().replace("-", "_") for r in profile.requirements}
    return IMAGE_MODULES | frozenset(guessed)


def profile_from_policy(name: str, requirements: Sequence[str], preload: Sequence[str] = (),
                        description: str = "") -> ImageProfile:
    """A user-declared profile (a policy's ``images:`` entry)."""
    return ImageProfile(
        name, tuple(requirements), tuple(preload), _THREAD_ENV, description or "user profile"
    )


def find_profile(name: str, policy: Any = None) -> ImageProfile:
    """A built-in profile, or one the policy declares under ``images:``."""
    if name in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[name]
    declared = getattr(policy, "images", {}) or {}
    if name in declared:
        d = declared[name]
        return profile_from_policy(name, d.requirements, d.preload, d.description)
    known = ", ".join([*BUILTIN_PROFILES, *sorted(declared)])
    raise UnknownImageProfileError(
        f"there is no image profile named {name!r} (known: {known}); declare it under images: "
        "in the policy"
    )


def _digest(profile: ImageProfile, base_tag: str) -> str:
    h = hashlib.sha256()
    for part in (base_tag, _DOCKERFILE, json.dumps(profile.definition(), sort_keys=True)):
        data = part.encode()
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def profile_tag(profile: ImageProfile) -> str:
    """The image tag of a profile (``base``: the sandbox image's own tag)."""
    if profile.name == "base":
        return IMAGE_TAG
    return f"{IMAGE_REPOSITORY}:{__version__}-{profile.name}-{_digest(profile, IMAGE_TAG)[:12]}"


def expected_recipe(labels: Mapping[str, str]) -> str | None:
    """The recipe a profile image with these labels must carry to be current."""
    try:
        definition = json.loads(labels.get(DEFINITION_LABEL, ""))
    except ValueError:
        return None
    profile = ImageProfile(
        definition["name"],
        tuple(definition["requirements"]),
        tuple(definition["preload"]),
        tuple((k, v) for k, v in definition["env"]),
    )
    return _digest(profile, IMAGE_TAG)


# The install stage starts from the runner-free Debian base, so Docker's layer cache keeps the
# (slow) install and byte-compilation across runner changes; only the last stage depends on them.
_DOCKERFILE = """\
FROM {install_base} AS install
USER 0
COPY wheels /tmp/wheels
RUN python3 /tmp/wheels/{pip_wheel}/pip install --no-index --no-deps --require-hashes \\
      --disable-pip-version-check --no-cache-dir --find-links /tmp/wheels --target /tmp/site \\
      -r /tmp/wheels/requirements.lock \\
 && rm -rf /tmp/site/bin \\
 && python3 -m compileall -q -j 0 -d {site} /tmp/site >/dev/null \\
 && chmod -R a+rX,go-w /tmp/site
FROM {base}
USER 0
COPY --from=install /tmp/site {site}
COPY image.json sbom.cdx.json /opt/cellblock/
ENV {env}
RUN set -e; \\
    chmod -R a+rX,go-w /opt/cellblock; \\
    find / -xdev \\( -perm -4000 -o -perm -2000 \\) -type f -exec chmod ug-s {{}} + ; \\
    cd /tmp && HOME=/tmp python3 -I -c "import {smoke}"; rm -rf /tmp/* /root/.cache
USER {uid}:{uid}
"""


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    filename: str
    sha256: str
    size: int
    modules: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "modules": list(self.modules),
        }


@dataclass(frozen=True)
class ProfileImageInfo:
    profile: str
    tag: str
    present: bool
    current: bool = False
    image_id: str | None = None
    size_bytes: int | None = None
    created: str | None = None
    python: str | None = None
    components: tuple[Component, ...] = ()
    modules: tuple[str, ...] = ()
    sbom: dict[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "tag": self.tag,
            "present": self.present,
            "current": self.current,
            "image_id": self.image_id,
            "size_bytes": self.size_bytes,
            "created": self.created,
            "python": self.python,
            "components": [c.to_dict() for c in self.components],
            "modules": list(self.modules),
            "sbom": self.sbom,
        }


def top_level_modules(wheel: Path) -> tuple[str, ...]:
    """Importable top-level names a wheel installs (packages, modules, extension modules)."""
    names: set[str] = set()
    with zipfile.ZipFile(wheel) as zf:
        for entry in zf.namelist():
            first = entry.split("/", 1)[0]
            if first.endswith((".dist-info", ".data")) or first.startswith("__"):
                continue
            if "/" in entry:
                if entry.endswith(("/__init__.py", ".py")) or ".cpython-" in entry:
                    names.add(first)
            elif entry.endswith(".py"):
                names.add(entry[:-3])
            elif entry.endswith(".so"):
                names.add(entry.split(".", 1)[0])
    return tuple(sorted(n for n in names if n.isidentifier()))


def _sbom(profile: ImageProfile, tag: str, components: Sequence[Component]) -> dict[str, Any]:
    """A CycloneDX 1.5 document listing every installed distribution with its wheel's hash."""
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tools": [{"vendor": "cellblock", "name": "cellblock", "version": __version__}],
            "component": {"type": "container", "name": tag, "description": profile.description},
        },
        "components": [
            {
                "type": "library",
                "name": c.name,
                "version": c.version,
                "purl": f"pkg:pypi/{c.name}@{c.version}",
                "hashes": [{"alg": "SHA-256", "content": c.sha256}],
                "properties": [{"name": "cellblock:wheel", "value": c.filename}],
            }
            for c in components
        ],
    }


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    member.mode = 0o644
    tar.addfile(member, io.BytesIO(data))


def build_profile_image(
    client: Any,
    profile: ImageProfile,
    *,
    force: bool = False,
    progress: Progress | None = _print_progress,
    wheelhouse: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ProfileImageInfo:
    """Build a profile's image unless a current one exists. Idempotent; no network in the
    build (the host fetches the wheels first)."""
    from cellblock.packages import PackageError, PipResolver

    say: Progress = progress or (lambda _m: None)
    base_info = inspect_image(client)
    if not (base_info.present and base_info.current):
        base_info = build_image(client, progress=progress)
    if profile.name == "base":
        return inspect_profile_image(client, profile)
    tag = profile_tag(profile)
    info = inspect_profile_image(client, profile)
    if info.present and info.current and not force:
        say(f"{tag} is current; nothing to do")
        return info
    started = time.monotonic()
    target = _target_of(base_info.python)
    resolver = PipResolver(target, wheelhouse=wheelhouse, env=env)
    say(f"resolving {len(profile.requirements)} requirements for {target.describe()} "
        f"from the {resolver.source()}")
    try:
        resolution = resolver.resolve(list(profile.requirements))
        tool = resolver.resolve([BUILD_PIP]).distributions[0]
    except PackageError as exc:
        raise ImageBuildError(f"the {profile.name} image needs its wheels: {exc}") from exc
    components = [
        Component(d.name, d.version, d.filename, d.sha256, d.size, top_level_modules(d.path))
        for d in resolution.distributions
    ]
    say(f"{len(components)} wheels ({resolution.total_bytes / 2**20:.0f} MiB) ready in "
        f"{time.monotonic() - started:.1f}s; building {tag}")
    sbom = _sbom(profile, tag, components)
    manifest = {
        "profile": profile.definition(),
        "tag": tag,
        "target": target.to_dict(),
        "components": [c.to_dict() for c in components],
    }
    modules = sorted({m for c in components for m in c.modules})
    major, minor = target.python_version
    site = f"/usr/local/lib/python{major}.{minor}/dist-packages"
    env_pairs = [("CELLBLOCK_PROFILE", profile.name), *profile.env]
    if profile.preload:
        env_pairs.append(("CELLBLOCK_PRELOAD", ",".join(profile.preload)))
    dockerfile = _DOCKERFILE.format(
        install_base=base_info.base or IMAGE_TAG,
        base=IMAGE_TAG,
        pip_wheel=tool.filename,
        site=site,
        env=" ".join(f"{k}={v}" for k, v in env_pairs),
        smoke=", ".join(profile.preload) or "sys",
        uid=SANDBOX_UID,
    )
    lock = "".join(
        f"{d.name}=={d.version} --hash=sha256:{d.sha256}\n" for d in resolution.distributions
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _tar_add(tar, "Dockerfile", dockerfile.encode())
        _tar_add(tar, "image.json", json.dumps(manifest, indent=1).encode())
        _tar_add(tar, "sbom.cdx.json", json.dumps(sbom, indent=1).encode())
        _tar_add(tar, "wheels/requirements.lock", lock.encode())
        for d in (*resolution.distributions, tool):
            tar.add(str(d.path), arcname=f"wheels/{d.filename}")
    buf.seek(0)
    labels = {
        RECIPE_LABEL: _digest(profile, IMAGE_TAG),
        PROFILE_LABEL: profile.name,
        DEFINITION_LABEL: json.dumps(profile.definition(), sort_keys=True),
        MODULES_LABEL: ",".join(modules),
        SBOM_LABEL: json.dumps(sbom, separators=(",", ":")),
        "cellblock.base": base_info.base or "",
        "cellblock.version": __version__,
        "cellblock.python": base_info.python or "",
    }
    _run_build(client, buf, tag=tag, labels=labels, what=tag, error=ImageBuildError, say=say,
               nocache=force, hide_label_step=True)
    info = inspect_profile_image(client, profile)
    if not info.current:
        raise ImageBuildError(f"the {profile.name} image was built but its recipe label differs")
    say(f"built {tag} in {time.monotonic() - started:.1f}s")
    return info


def _target_of(python: str | None) -> Any:
    from cellblock.packages import Target

    if not python:
        return Target()
    major, minor = (int(x) for x in python.split(".")[:2])
    return Target(python_version=(major, minor))


def inspect_profile_image(client: Any, profile: ImageProfile) -> ProfileImageInfo:
    """What the engine holds for a profile: present, current, and the recorded contents."""
    import docker.errors

    tag = profile_tag(profile)
    if profile.name == "base":
        base = inspect_image(client)
        return ProfileImageInfo(
            "base", tag, base.present, base.current, base.image_id, base.size_bytes,
            base.created, base.python,
        )
    try:
        data = client.api.inspect_image(tag)
    except docker.errors.ImageNotFound:
        return ProfileImageInfo(profile.name, tag, False)
    labels: dict[str, str] = (data.get("Config") or {}).get("Labels") or {}
    try:
        sbom = json.loads(labels.get(SBOM_LABEL, "null"))
    except ValueError:
        sbom = None
    components = tuple(
        Component(
            str(c.get("name")),
            str(c.get("version")),
            next((p["value"] for p in c.get("properties", []) if p["name"] == "cellblock:wheel"),
                 ""),
            next((h["content"] for h in c.get("hashes", []) if h["alg"] == "SHA-256"), ""),
            0,
            (),
        )
        for c in (sbom or {}).get("components", [])
    )
    recipe = labels.get(RECIPE_LABEL)
    return ProfileImageInfo(
        profile.name,
        tag,
        True,
        recipe is not None and recipe == _digest(profile, IMAGE_TAG),
        data.get("Id"),
        data.get("Size"),
        data.get("Created"),
        labels.get("cellblock.python"),
        components,
        tuple(m for m in labels.get(MODULES_LABEL, "").split(",") if m),
        sbom,
    )


def require_profile_image(client: Any, profile: ImageProfile) -> ProfileImageInfo:
    info = inspect_profile_image(client, profile)
    if not (info.present and info.current):
        state = "not on the engine" if not info.present else "stale"
        raise ImageMissingError(
            f"the {profile.name} image ({info.tag}) is {state}; build it with "
            f"`cellblock image build --profile {profile.name}`"
        )
    return info
