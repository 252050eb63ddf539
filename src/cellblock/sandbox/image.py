"""Build the sandbox image offline.

Recipe: a base with Python 3 (the official ``python:3.x-slim`` when the engine can pull it, else a
Debian minbase root filesystem bootstrapped with ``mmdebstrap`` from Debian's packages and
``docker import``-ed), then a non-root user, the work directories and the in-container runner,
with every setuid/setgid bit removed. The image is tagged with cellblock's version and labelled
with a digest of its recipe, so a stale image is detected and rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cellblock import __version__
from cellblock.sandbox.errors import ImageBuildError, ImageMissingError

IMAGE_REPOSITORY = "cellblock/sandbox"
BASE_IMPORT_TAG = "cellblock/base:bookworm"
SLIM_BASE = "python:3.11-slim"
RECIPE_LABEL = "cellblock.recipe"
SANDBOX_UID = 10001
# Each container's program gets its own uid from this range (named users in the image), so the
# kernel's per-uid budgets (pipe buffers, inotify, message queues) are not shared between runs.
SANDBOX_UID_COUNT = 1024
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"
RUNNER_PATH = "/opt/cellblock/cellblock_runner.py"

Progress = Callable[[str], None]

_DOCKERFILE = """\
FROM {base}
USER 0
COPY cellblock_runner.py /opt/cellblock/cellblock_runner.py
COPY cellblock_runner_files.py cellblock_runner_session.py cellblock_runner_batch.py /opt/cellblock/
RUN set -e; \\
    (getent group {uid} >/dev/null || groupadd -g {uid} cell); \\
    (getent passwd {uid} >/dev/null || useradd -u {uid} -g {uid} -M -d /work -s /usr/sbin/nologin cell); \\
    for u in $(seq {uid_next} {uid_last}); do \\
      echo "cell$u:x:$u:$u::/work:/usr/sbin/nologin" >> /etc/passwd; echo "cell$u:x:$u:" >> /etc/group; \\
    done; \\
    mkdir -p /work; chown {uid}:{uid} /work; chmod 0700 /work; \\
    chmod 0755 /opt/cellblock; chmod 0644 /opt/cellblock/cellblock_runner*.py; \\
    python3 -m py_compile /opt/cellblock/cellblock_runner*.py; \\
    find / -xdev \\( -perm -4000 -o -perm -2000 \\) -type f -exec chmod ug-s {{}} + ; \\
    rm -rf /var/cache/apt/* /var/lib/apt/lists/* /root/.cache
ENV LANG=C.UTF-8 HOME=/work PYTHONDONTWRITEBYTECODE=1
USER {uid}:{uid}
WORKDIR /work
ENTRYPOINT ["/usr/bin/env", "python3", "-I", "-c", "import sys; sys.path.insert(0, '/opt/cellblock'); import cellblock_runner; sys.exit(cellblock_runner.main())"]
"""


def runner_source() -> bytes:
    return resources.files("cellblock.sandbox").joinpath("_runner.py").read_bytes()


# Modules the runner imports on demand (files, sessions, shared batch cells): copied next to it under these names.
RUNNER_MODULES = {
    "cellblock_runner_files.py": "_runner_files.py",
    "cellblock_runner_session.py": "_runner_session.py",
    "cellblock_runner_batch.py": "_runner_batch.py",
}


def runner_modules_source() -> bytes:
    """Every runner module, length-prefixed, for the content tag and the recipe digest."""
    out = bytearray()
    for name, source in sorted(RUNNER_MODULES.items()):
        data = resources.files("cellblock.sandbox").joinpath(source).read_bytes()
        out += f"{name}:{len(data)}\n".encode() + data
    return bytes(out)


def _content_tag() -> str:
    # The tag names what is inside (Dockerfile, runner, uids), so two cellblock checkouts with
    # different runners never overwrite each other's image on a shared engine.
    h = hashlib.sha256()
    for part in (_DOCKERFILE.encode(), runner_source(), f"{SANDBOX_UID}+{SANDBOX_UID_COUNT}".encode(), runner_modules_source()):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return f"{IMAGE_REPOSITORY}:{__version__}-{h.hexdigest()[:12]}"


IMAGE_TAG = _content_tag()


def recipe_digest(base: str) -> str:
    """SHA-256 of everything that determines the image: base, Dockerfile, runner."""
    h = hashlib.sha256()
    uids = f"{SANDBOX_UID}+{SANDBOX_UID_COUNT}".encode()
    for part in (base.encode(), _DOCKERFILE.encode(), runner_source(), uids, runner_modules_source()):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


@dataclass(frozen=True)
class ImageInfo:
    tag: str
    present: bool
    image_id: str | None = None
    recipe: str | None = None
    current: bool = False
    base: str | None = None
    size_bytes: int | None = None
    created: str | None = None
    python: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _expected_digest_for(labels: dict[str, str]) -> str | None:
    if labels.get("cellblock.profile", "base") != "base":  # an image profile built FROM this one
        from cellblock.sandbox.profiles import expected_recipe

        return expected_recipe(labels)
    base = labels.get("cellblock.base")
    return recipe_digest(base) if base else None


def inspect_image(client: Any, tag: str = IMAGE_TAG) -> ImageInfo:
    import docker.errors

    try:
        data = client.api.inspect_image(tag)
    except docker.errors.ImageNotFound:
        return ImageInfo(tag=tag, present=False)
    labels = (data.get("Config") or {}).get("Labels") or {}
    recipe = labels.get(RECIPE_LABEL)
    return ImageInfo(
        tag=tag,
        present=True,
        image_id=data.get("Id"),
        recipe=recipe,
        current=recipe is not None and recipe == _expected_digest_for(labels),
        base=labels.get("cellblock.base"),
        size_bytes=data.get("Size"),
        created=data.get("Created"),
        python=labels.get("cellblock.python"),
    )


def require_current_image(client: Any, tag: str = IMAGE_TAG) -> ImageInfo:
    info = inspect_image(client, tag)
    if not info.present:
        raise ImageMissingError(
            f"the sandbox image {tag} is not on the engine; build it with `cellblock image build`"
        )
    if not info.current:
        raise ImageMissingError(
            f"the sandbox image {tag} was built from another recipe (stale); rebuild it with "
            "`cellblock image build`"
        )
    return info


def _print_progress(message: str) -> None:
    import sys

    print(f"[cellblock image] {message}", file=sys.stderr, flush=True)


def build_image(
    client: Any,
    *,
    force: bool = False,
    progress: Progress | None = _print_progress,
    try_pull: bool = True,
    mirror: str | None = None,
    suite: str | None = None,
) -> ImageInfo:
    """Build the sandbox image unless a current one exists. Idempotent."""
    say: Progress = progress or (lambda _m: None)
    info = inspect_image(client)
    if info.present and info.current and not force:
        say(f"{IMAGE_TAG} is current ({(info.image_id or '')[:19]}); nothing to do")
        return info
    started = time.monotonic()
    base = _obtain_base(client, say, try_pull=try_pull, mirror=mirror, suite=suite, force=force)
    say(f"building {IMAGE_TAG} on {base}")
    digest = recipe_digest(base)
    python_version = _python_version_of(client, base)
    context = _build_context(base)
    labels = {
        RECIPE_LABEL: digest,
        "cellblock.base": base,
        "cellblock.version": __version__,
        "cellblock.python": python_version,
    }
    _run_build(client, context, tag=IMAGE_TAG, labels=labels, what="the sandbox image",
               error=ImageBuildError, say=say)
    info = inspect_image(client)
    if not info.current:
        raise ImageBuildError("the sandbox image was built but its recipe label does not match")
    say(f"built {IMAGE_TAG} ({info.image_id}) in {time.monotonic() - started:.1f}s")
    return info


def _run_build(client: Any, context: io.BytesIO, *, tag: str, labels: dict[str, str], what: str,
               error: type[Exception], say: Progress | None = None, nocache: bool = False,
               detail_lines: int = 8, hide_label_step: bool = False) -> None:
    """Build ``context`` (a tar with a Dockerfile) offline as ``tag``, streaming its steps to ``say``.

    Shared by every image cellblock builds; a failure raises ``error`` naming ``what`` with the
    last ``detail_lines`` lines of build output.
    """
    import docker.errors

    try:
        stream = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            labels=labels,
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="none",  # everything the build installs is in the context
            nocache=nocache,
            decode=True,
        )
        recent: list[str] = []
        for chunk in stream:
            if "error" in chunk:
                message = f"building {what} failed: {str(chunk['error']).strip()}"
                if detail_lines:
                    message += "\n" + "\n".join(recent[-detail_lines:])
                raise error(message)
            line = re.sub(r"\x1b\[[0-9;]*m", "", str(chunk.get("stream", ""))).strip()
            if line:
                recent.append(line)
            if say and line.startswith("Step ") and not (hide_label_step and " : LABEL " in line):
                say(line)
    except docker.errors.APIError as exc:
        raise error(f"building {what} failed: {exc.explanation}") from exc


def _build_context(base: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (
            (
                "Dockerfile",
                _DOCKERFILE.format(
                    base=base,
                    uid=SANDBOX_UID,
                    uid_next=SANDBOX_UID + 1,
                    uid_last=SANDBOX_UID + SANDBOX_UID_COUNT - 1,
                ).encode(),
            ),
            ("cellblock_runner.py", runner_source()),
            *(
                (name, resources.files("cellblock.sandbox").joinpath(source).read_bytes())
                for name, source in RUNNER_MODULES.items()
            ),
        ):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            member.mode = 0o644
            tar.addfile(member, io.BytesIO(data))
    buf.seek(0)
    return buf


def _python_version_of(client: Any, base: str) -> str:
    out = client.containers.run(
        base,
        ["python3", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        remove=True,
        network_disabled=True,
        entrypoint=[],
    )
    return bytes(out).decode().strip()


def _has_image(client: Any, ref: str) -> bool:
    import docker.errors

    try:
        client.api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def _obtain_base(
    client: Any,
    say: Progress,
    *,
    try_pull: bool,
    mirror: str | None,
    suite: str | None,
    force: bool,
) -> str:
    import docker.errors

    if _has_image(client, SLIM_BASE):
        say(f"using the local {SLIM_BASE} base")
        return SLIM_BASE
    if _has_image(client, BASE_IMPORT_TAG) and not force:
        say(f"using the local bootstrapped base {BASE_IMPORT_TAG}")
        return BASE_IMPORT_TAG
    if try_pull and not os.environ.get("CELLBLOCK_NO_PULL"):
        say(f"trying to pull {SLIM_BASE}")
        try:
            client.images.pull(SLIM_BASE)
            say(f"pulled {SLIM_BASE}")
            return SLIM_BASE
        except docker.errors.APIError as exc:
            say(
                f"cannot pull {SLIM_BASE} ({str(exc.explanation or exc)[:120]}); bootstrapping from Debian"
            )
    _bootstrap_debian(client, say, mirror=mirror, suite=suite)
    return BASE_IMPORT_TAG


def _bootstrap_debian(client: Any, say: Progress, *, mirror: str | None, suite: str | None) -> None:
    mirror = mirror or os.environ.get("CELLBLOCK_DEBIAN_MIRROR") or DEFAULT_MIRROR
    suite = suite or os.environ.get("CELLBLOCK_DEBIAN_SUITE") or DEFAULT_SUITE
    tool = shutil.which("mmdebstrap") or _install_mmdebstrap(say)
    mode = "root" if os.geteuid() == 0 else "unshare"
    with tempfile.TemporaryDirectory(prefix="cellblock-rootfs-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        cmd = [
            tool,
            "--variant=minbase",
            "--include=python3",
            f"--mode={mode}",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-include=/usr/share/locale/locale.alias",
            suite,
            str(tarball),
            mirror,
        ]
        say(f"bootstrapping Debian {suite} (minbase + python3) from {mirror} with mmdebstrap")
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise ImageBuildError(
                f"mmdebstrap failed (exit {proc.returncode}); check that {mirror} is reachable "
                f"or set CELLBLOCK_DEBIAN_MIRROR. Last lines:\n{tail}"
            )
        say(f"root filesystem ready in {time.monotonic() - started:.1f}s; importing it")
        repo, tag = BASE_IMPORT_TAG.split(":")
        result = client.api.import_image_from_file(str(tarball), repository=repo, tag=tag)
        if "error" in str(result).lower() and not _has_image(client, BASE_IMPORT_TAG):
            raise ImageBuildError(f"docker import failed: {result}")
    if not _has_image(client, BASE_IMPORT_TAG):
        raise ImageBuildError(f"docker import did not produce {BASE_IMPORT_TAG}")


def _install_mmdebstrap(say: Progress) -> str:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ImageBuildError(
            "mmdebstrap is needed to bootstrap the sandbox image offline and is not installed; "
            "install it with `sudo apt-get install mmdebstrap` and run `cellblock image build` again"
        )
    say("installing mmdebstrap with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "mmdebstrap"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0 and cmd[1] == "install":
            raise ImageBuildError(
                f"apt-get install mmdebstrap failed: {proc.stderr.strip()[-300:]}"
            )
    tool = shutil.which("mmdebstrap")
    if not tool:
        raise ImageBuildError("mmdebstrap was installed but is not on PATH")
    return tool
