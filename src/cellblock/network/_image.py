"""The image allowlist cells run on: the sandbox image plus pip and the policy's CA bundle.

Built offline (``network_mode=none``) from what the host already has: the sandbox image, the pip
wheel that the host's Python bundles for ``ensurepip``, and the CA bundle file. Its tag names its
content, so each bundle gets its own image and a rebuilt sandbox image gets a new one.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from pathlib import Path
from typing import Any

from cellblock.network.interface import GatewayError
from cellblock.sandbox.image import _run_build

NET_IMAGE_REPOSITORY = "cellblock/sandbox-net"
CA_PATH = "/etc/cellblock/ca.pem"

_DOCKERFILE = """\
FROM {base}
USER 0
{copy_ca}
{copy_pip}
RUN set -e; {install_pip} find / -xdev \\( -perm -4000 -o -perm -2000 \\) -type f -exec chmod ug-s {{}} + ; rm -rf /root/.cache
USER {user}
"""

_lock = threading.Lock()


def bundled_pip_wheel() -> Path | None:
    """The pip wheel the host's Python carries for ``ensurepip`` (or Debian's copy)."""
    candidates: list[Path] = []
    try:
        import ensurepip

        candidates += sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
    except ImportError:
        pass
    candidates += sorted(Path("/usr/share/python-wheels").glob("pip-*.whl"))
    return candidates[-1] if candidates else None


def network_image(client: Any, base_image_id: str, ca_bundle: str | None, user: str) -> str:
    """The id of the allowlist image for this base and bundle, building it when absent."""
    import docker.errors

    ca = Path(ca_bundle).read_bytes() if ca_bundle else None
    wheel = bundled_pip_wheel()
    wheel_bytes = wheel.read_bytes() if wheel else None
    files: dict[str, bytes] = {}
    if ca is not None:
        files["ca.pem"] = ca
    if wheel is not None and wheel_bytes is not None:
        files[wheel.name] = wheel_bytes
    dockerfile = _DOCKERFILE.format(
        base=base_image_id,
        copy_ca=f"COPY ca.pem {CA_PATH}" if ca is not None else "",
        copy_pip=f"COPY {wheel.name} /opt/cellblock-pip/{wheel.name}" if wheel else "",
        install_pip=(
            f"python3 /opt/cellblock-pip/{wheel.name}/pip install --quiet --no-index "
            f"--no-cache-dir --break-system-packages /opt/cellblock-pip/{wheel.name}; "
            "rm -rf /opt/cellblock-pip;"
            if wheel
            else ""
        ),
        user=user,
    ).encode()
    h = hashlib.sha256()
    for part in (dockerfile, *(files[k] for k in sorted(files))):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    tag = f"{NET_IMAGE_REPOSITORY}:{h.hexdigest()[:16]}"
    with _lock:
        try:
            image_id: str = client.api.inspect_image(tag)["Id"]
            return image_id
        except docker.errors.ImageNotFound:
            pass
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in {"Dockerfile": dockerfile, **files}.items():
                member = tarfile.TarInfo(name)
                member.size = len(data)
                member.mode = 0o644
                tar.addfile(member, io.BytesIO(data))
        buf.seek(0)
        _run_build(client, buf, tag=tag, labels={"cellblock.network-image": "1"},
                   what="the allowlist image", error=GatewayError, detail_lines=0)
        image_id = client.api.inspect_image(tag)["Id"]
        return image_id
