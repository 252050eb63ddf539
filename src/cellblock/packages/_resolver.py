"""Resolve requirements to wheels with the host's pip, for the sandbox image's interpreter.

Two pip runs, neither of which can execute package code: ``pip install --dry-run --report``
with ``--only-binary=:all:`` and the target's ``--platform/--python-version/--abi`` resolves
(wheels only, so no sdist is ever built), then ``pip download --no-deps --require-hashes``
fetches exactly the resolved files, which are checked against their sha256 again before they
enter the content-addressed cache. With a wheelhouse, pip runs with ``--no-index
--find-links DIR`` and never touches the network.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from cellblock.packages._cache import WheelCache, sha256_file
from cellblock.packages._pipconfig import HostPip, config_key, host_pip, pip_command, pip_env
from cellblock.packages.errors import (
    HashMismatchError,
    IndexUnreachableError,
    InvalidSpecError,
    NoSuchVersionError,
    ResolutionError,
    SdistOnlyError,
    UnknownPackageError,
    WrongPlatformError,
)
from cellblock.packages.interface import Distribution, Resolution, Resolver, Target

MAX_REQUIREMENTS = 64
_UNREACHABLE = re.compile(
    r"Failed to establish a new connection|NewConnectionError|Connection refused|"
    r"ConnectTimeout|Read timed out|Max retries exceeded|ProxyError|SSLError|"
    r"Name or service not known|Temporary failure in name resolution|Could not fetch URL",
)
_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")


def parse_requirement(spec: str) -> Requirement:
    """A plain ``name[extras][specifier][; marker]``; no URLs, paths or pip options."""
    text = spec.strip()
    if not text or text.startswith("-") or len(text) > 200:
        raise InvalidSpecError(
            f"{spec!r} is not a package requirement; give a name with an optional version, "
            "such as tabulate==0.9.0"
        )
    try:
        req = Requirement(text)
    except InvalidRequirement:
        raise InvalidSpecError(
            f"{spec!r} is not a package requirement; give a name with an optional version, "
            "such as tabulate==0.9.0"
        ) from None
    if req.url:
        raise InvalidSpecError(
            f"{spec!r} names a URL; cellblock installs only packages from the index or a "
            "wheelhouse, give name==version"
        )
    return req


def read_requirements_file(path: Path) -> tuple[list[str], dict[str, set[str]]]:
    """Requirements and their pinned hashes (``--hash=sha256:...``) from a requirements file.

    Only plain requirement lines, comments and ``--hash`` are accepted: options that change
    where pip looks (``-i``, ``-f``, ``-e``, ``-r``) are refused, the host's pip decides that.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSpecError(f"cannot read the requirements file {path}: {exc}") from None
    specs: list[str] = []
    hashes: dict[str, set[str]] = {}
    joined = re.sub(r"\\\n", " ", text)
    for number, raw in enumerate(joined.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        spec_parts = [p for p in parts if not p.startswith("--hash")]
        pins = [p.split("=", 1)[1] for p in parts if p.startswith("--hash=")]
        if not spec_parts or spec_parts[0].startswith("-"):
            raise InvalidSpecError(
                f"{path}:{number}: only requirement lines and --hash are accepted, not {line!r}"
            )
        spec = " ".join(spec_parts)
        req = parse_requirement(spec)
        specs.append(spec)
        for pin in pins:
            algo, _, digest = pin.partition(":")
            if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise InvalidSpecError(f"{path}:{number}: expected --hash=sha256:<64 hex>")
            hashes.setdefault(canonicalize_name(req.name), set()).add(digest)
    return specs, hashes


class PipResolver(Resolver):
    """Resolve with the host's pip into a :class:`WheelCache`."""

    def __init__(
        self,
        target: Target | None = None,
        *,
        cache: WheelCache | None = None,
        wheelhouse: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 600.0,
        retries: int = 2,
        resolution_ttl_s: float = 3600.0,
    ) -> None:
        self.target = target or Target()
        self.cache = cache or WheelCache()
        self.wheelhouse = wheelhouse
        self.env = pip_env(env)
        self.timeout_s = timeout_s
        self.retries = retries
        #: a resolution of the same requirements for the same target and source is reused this
        #: long without asking pip (its files are still hash-checked on every use); 0 disables
        self.resolution_ttl_s = resolution_ttl_s
        self._host: HostPip | None = None

    @property
    def host(self) -> HostPip:
        if self._host is None:
            self._host = host_pip(self.env)
        return self._host

    def source(self) -> str:
        if self.wheelhouse is not None:
            return f"wheelhouse {self.wheelhouse}"
        return f"index {self.host.describe()}"

    # -- pip -----------------------------------------------------------------------------------

    def _index_args(self) -> list[str]:
        args = ["--retries", str(self.retries)]
        if self.wheelhouse is not None:
            args += ["--no-index", "--find-links", str(self.wheelhouse)]
        return args

    def _pip(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [*pip_command(), *args],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise IndexUnreachableError(
                f"pip did not finish within {self.timeout_s:g}s talking to the {self.source()}; "
                "check the network or use a wheelhouse (--wheelhouse DIR)"
            ) from None

    # -- resolve -------------------------------------------------------------------------------

    def resolve(
        self,
        requirements: Sequence[str],
        *,
        hashes: Mapping[str, set[str]] | None = None,
    ) -> Resolution:
        """Resolve, fetch and verify. ``hashes`` pins names to allowed sha256 digests."""
        if self.wheelhouse is not None and not self.wheelhouse.is_dir():
            raise IndexUnreachableError(
                f"the wheelhouse {self.wheelhouse} is not a directory; give a directory of wheels"
            )
        if len(requirements) > MAX_REQUIREMENTS:
            raise InvalidSpecError(f"at most {MAX_REQUIREMENTS} requirements per run are accepted")
        reqs = [parse_requirement(spec) for spec in requirements]
        if not reqs:
            return Resolution((), (), self.target, self.source(), cached=True)
        memory = self._remembered(reqs, hashes)
        from_memory = memory is not None
        if memory is None:
            items, source = self._report(reqs), self.source()
        else:
            items, source = memory
        requested = {canonicalize_name(r.name) for r in reqs}
        dists: list[Distribution] = []
        missing: list[dict[str, Any]] = []
        for item in items:
            cached = self.cache.get(item["sha256"], item["filename"]) if item["sha256"] else None
            if cached is None:
                missing.append(item)
        if missing:
            self._fetch(missing)
        for item in items:
            name = item["name"]
            path = self.cache.get(item["sha256"], item["filename"])
            if path is None:
                raise HashMismatchError(
                    f"{item['filename']} did not arrive in the cache with sha256 "
                    f"{item['sha256']}; retry, and if it repeats the index serves other bytes "
                    "than it lists"
                )
            pinned = (hashes or {}).get(name)
            if pinned and item["sha256"] not in pinned:
                raise HashMismatchError(
                    f"{item['filename']} has sha256 {item['sha256']}, which is not among the "
                    f"hashes pinned for {name}; check the requirements file or the index"
                )
            dists.append(
                Distribution(
                    name=name,
                    version=item["version"],
                    filename=item["filename"],
                    sha256=item["sha256"],
                    size=path.stat().st_size,
                    path=path,
                    requested=name in requested,
                )
            )
        dists.sort(key=lambda d: d.name)
        if not from_memory:
            self._remember(reqs, hashes, items)
        return Resolution(
            tuple(str(r) for r in reqs),
            tuple(dists),
            self.target,
            source,
            cached=not missing,
        )

    def _memory_path(self, reqs: list[Requirement], hashes: Mapping[str, set[str]] | None) -> Path:
        import hashlib

        key = json.dumps(
            {
                "requirements": sorted(str(r) for r in reqs),
                "hashes": {k: sorted(v) for k, v in sorted((hashes or {}).items())},
                "target": self.target.to_dict(),
                "wheelhouse": str(self.wheelhouse or ""),
                "pip": config_key(self.env),
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.cache.root / "resolutions" / f"{digest}.json"

    def _remembered(
        self, reqs: list[Requirement], hashes: Mapping[str, set[str]] | None
    ) -> tuple[list[dict[str, Any]], str] | None:
        if self.resolution_ttl_s <= 0:
            return None
        import time

        path = self._memory_path(reqs, hashes)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or time.time() - float(data.get("created", 0)) > (
            self.resolution_ttl_s
        ):
            return None
        items = data.get("items")
        return (items, str(data.get("source", ""))) if isinstance(items, list) else None

    def _remember(
        self,
        reqs: list[Requirement],
        hashes: Mapping[str, set[str]] | None,
        items: list[dict[str, Any]],
    ) -> None:
        import contextlib
        import os
        import time

        path = self._memory_path(reqs, hashes)
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            body = {"created": time.time(), "items": items, "source": self.source()}
            tmp.write_text(json.dumps(body), "utf-8")
            os.replace(tmp, path)

    def _report(self, reqs: list[Requirement]) -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="cellblock-resolve-") as tmp:
            report = Path(tmp) / "report.json"
            args = ["install", "--dry-run", "--ignore-installed", "--quiet", "--no-color"]
            args += ["--report", str(report), "--target", str(Path(tmp) / "target")]
            args += self.target.pip_args() + self._index_args() + [str(r) for r in reqs]
            proc = self._pip(args)
            if proc.returncode != 0 or not report.is_file():
                raise self._explain(proc.stderr + proc.stdout, reqs)
            data = json.loads(report.read_text(encoding="utf-8"))
        items: list[dict[str, Any]] = []
        for entry in data.get("install", []):
            info = entry.get("download_info") or {}
            url = str(info.get("url", ""))
            filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
            if not filename.endswith(".whl"):  # --only-binary makes this impossible
                raise ResolutionError(f"pip resolved {filename!r}, which is not a wheel")
            hashes = (info.get("archive_info") or {}).get("hashes") or {}
            sha = hashes.get("sha256")
            if sha is None and url.startswith("file:"):
                sha = sha256_file(Path(unquote(urlsplit(url).path)))
            if sha is None:
                raise HashMismatchError(
                    f"the index gave no sha256 for {filename}; cellblock only installs "
                    "hash-checked wheels"
                )
            meta = entry.get("metadata") or {}
            items.append(
                {
                    "name": canonicalize_name(meta.get("name", filename.split("-")[0])),
                    "version": str(meta.get("version", "")),
                    "filename": filename,
                    "sha256": sha,
                    "url": url,
                }
            )
        return items

    def _fetch(self, items: list[dict[str, Any]]) -> None:
        with tempfile.TemporaryDirectory(prefix="cellblock-download-") as tmp:
            dest = Path(tmp) / "d"
            dest.mkdir()
            local = [i for i in items if i["url"].startswith("file:")]
            remote = [i for i in items if not i["url"].startswith("file:")]
            for item in local:
                shutil.copyfile(Path(unquote(urlsplit(item["url"]).path)), dest / item["filename"])
            if remote:
                lock = Path(tmp) / "lock.txt"
                lock.write_text(
                    "".join(
                        f"{i['name']}=={i['version']} --hash=sha256:{i['sha256']}\n"
                        for i in remote
                    ),
                    encoding="utf-8",
                )
                args = ["download", "--no-deps", "--require-hashes", "--quiet", "--no-color"]
                args += ["-d", str(dest), "-r", str(lock)]
                args += self.target.pip_args() + self._index_args()
                proc = self._pip(args)
                if proc.returncode != 0:
                    raise self._explain(proc.stderr + proc.stdout, [])
            for item in items:
                path = dest / item["filename"]
                if not path.is_file():
                    raise ResolutionError(f"pip did not download {item['filename']}")
                actual = sha256_file(path)
                if actual != item["sha256"]:
                    raise HashMismatchError(
                        f"{item['filename']} has sha256 {actual} but {item['sha256']} was "
                        "expected; the index or wheelhouse serves other bytes than it lists"
                    )
                self.cache.put(path, actual)

    # -- errors --------------------------------------------------------------------------------

    def _explain(self, output: str, reqs: list[Requirement]) -> Exception:
        where = self.source()
        if "DO NOT MATCH THE HASHES" in output:
            line = next((ln.strip() for ln in output.splitlines() if "Expected sha256" in ln), "")
            return HashMismatchError(
                f"a file from the {where} does not match its pinned sha256 ({line or 'see pip'}); "
                "check the pins, or the index serves other bytes than it lists"
            )
        if self.wheelhouse is None and _UNREACHABLE.search(output):
            return self._unreachable("")
        found = _NOT_FOUND.search(output)
        if found:
            failing = found.group(1).strip("'\"")
            by_name = {canonicalize_name(r.name): r for r in reqs}
            try:
                req = Requirement(failing)
            except InvalidRequirement:
                req = None
            if req is not None:
                return self._diagnose(by_name.get(canonicalize_name(req.name), req))
        tail = " ".join(ln.strip() for ln in output.strip().splitlines()[-3:])
        return ResolutionError(
            f"pip could not resolve the requirements from the {where}: {tail[:400]}"
        )

    def _unreachable(self, detail: str) -> IndexUnreachableError:
        if self.wheelhouse is not None:
            return IndexUnreachableError(f"the {self.source()} cannot be read{detail}")
        return IndexUnreachableError(
            f"the package index pip is configured with ({self.host.describe()}) cannot be "
            f"reached{detail}; check the network or pip's configuration, or use a wheelhouse "
            "(--wheelhouse DIR)"
        )

    def _diagnose(self, req: Requirement) -> Exception:
        """Why no wheel fits ``req``: unknown name, no such version, sdist only, or platform."""
        name = canonicalize_name(req.name)
        try:
            files = self._project_files(name)
        except OSError as exc:
            return self._unreachable(f" ({exc})")
        if files is None or not files:
            return UnknownPackageError(
                f"there is no package named {req.name!r} on the {self.source()}; check the "
                "spelling"
            )
        versions: dict[Version, list[str]] = {}
        for filename in files:
            version = _version_of(filename, name)
            if version is not None:
                versions.setdefault(version, []).append(filename)
        matching = {
            v: f for v, f in versions.items() if req.specifier.contains(v, prereleases=True)
        }
        if not matching:
            latest = ", ".join(str(v) for v in sorted(versions, reverse=True)[:5])
            return NoSuchVersionError(
                f"{req.name} has no release matching {str(req.specifier) or 'any version'} on "
                f"the {self.source()} (latest: {latest or 'none'}); pick an existing version"
            )
        wheels = [f for fs in matching.values() for f in fs if f.endswith(".whl")]
        if not wheels:
            return SdistOnlyError(
                f"{req} is published only as source (sdist), which cellblock never builds; "
                "pick a version with wheels or provide a wheel in a wheelhouse"
            )
        supported = set(self._supported_tags())
        if not any(_tags_of(w) & supported for w in wheels):
            kinds = sorted({t.platform for w in wheels for t in _tags_of(w)})
            return WrongPlatformError(
                f"{req} has wheels only for {', '.join(kinds[:6])}, none for the sandbox "
                f"image ({self.target.describe()}); pick another version or package"
            )
        return ResolutionError(
            f"{req} has a wheel for the sandbox image, but one of its dependencies could not be "
            "resolved; run `pip install --dry-run` with the same requirement to see which"
        )

    def _supported_tags(self) -> list[Tag]:
        from packaging.tags import compatible_tags, cpython_tags

        py = self.target.python_version
        plats = list(self.target.platforms())
        return [*cpython_tags(py, platforms=plats), *compatible_tags(py, platforms=plats)]

    def _project_files(self, name: str) -> list[str] | None:
        """File names of a project (None: the project does not exist)."""
        if self.wheelhouse is not None:
            return [
                p.name
                for p in self.wheelhouse.iterdir()
                if _version_of(p.name, name) is not None
            ]
        url = self.host.index_url.rstrip("/") + f"/{name}/"
        accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
        request = urllib.request.Request(url, headers=accept)  # noqa: S310 (pip's own index)
        context = ssl.create_default_context(cafile=self.host.cert) if self.host.cert else None
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as resp:  # noqa: S310
                body = resp.read()
                kind = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise OSError(f"HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise OSError(str(exc.reason)) from None
        if "json" in kind:
            return [str(f.get("filename", "")) for f in json.loads(body).get("files", [])]
        return re.findall(r">([^<>]+?)</a>", body.decode("utf-8", "replace"))


def _version_of(filename: str, name: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            wname, version, _, _ = parse_wheel_filename(filename)
        else:
            wname, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return version if canonicalize_name(wname) == name else None


def _tags_of(filename: str) -> frozenset[Tag]:
    try:
        return parse_wheel_filename(filename)[3]
    except (InvalidWheelFilename, InvalidVersion):
        return frozenset()
