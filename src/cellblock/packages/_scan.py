"""Vulnerability scanning of resolved distributions.

The service is the index the host's pip uses, when it serves the PyPI JSON API (``/pypi/<name>/
<version>/json`` carries the advisories PyPI publishes, the same feed pip-audit's ``pypi``
service reads); otherwise OSV through pip-audit's ``OsvService``. An index that serves only the
project document (``/pypi/<name>/json``, whose advisories are those of the latest release) still
answers for the latest release; any other version is reported as unscanned, never as clean.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from cellblock.packages._cache import default_cache_dir
from cellblock.packages._pipconfig import HostPip, config_key, host_pip
from cellblock.packages.interface import (
    Distribution,
    ScanReport,
    Vulnerability,
    VulnerabilityScanner,
)

ServiceChoice = Literal["auto", "index", "osv"]


class _Unreachable(Exception):
    pass


class _IndexJson:
    """PyPI-style JSON API on the host's index."""

    def __init__(self, host: HostPip, timeout_s: float) -> None:
        self.base = host.json_api_base
        self.timeout_s = timeout_s
        self.context = ssl.create_default_context(cafile=host.cert) if host.cert else None

    def get(self, path: str) -> dict[str, Any] | None:
        accept = {"Accept": "application/json"}
        request = urllib.request.Request(self.base + path, headers=accept)  # noqa: S310
        try:
            with urllib.request.urlopen(  # noqa: S310 (the host's configured index)
                request, timeout=self.timeout_s, context=self.context
            ) as resp:
                data = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise _Unreachable(f"HTTP {exc.code} from the index's JSON API") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise _Unreachable(str(getattr(exc, "reason", exc))) from None
        except ValueError:
            raise _Unreachable("the index's JSON API returned something that is not JSON") from None
        return data if isinstance(data, dict) else None

    def available(self, probe_name: str) -> bool:
        try:
            doc = self.get(f"/pypi/{probe_name}/json")
        except _Unreachable:
            return False
        return doc is not None and isinstance(doc.get("info"), dict)

    def query(self, dist: Distribution) -> list[Vulnerability] | None:
        """Advisories for one release; ``None`` when the service cannot say."""
        doc = self.get(f"/pypi/{dist.name}/{dist.version}/json")
        if doc is None:
            project = self.get(f"/pypi/{dist.name}/json")
            info = (project or {}).get("info") or {}
            if project is None or str(info.get("version")) != dist.version:
                return None
            doc = project
        found = []
        for v in doc.get("vulnerabilities") or []:
            if v.get("withdrawn"):
                continue
            found.append(
                Vulnerability(
                    id=str(v.get("id")),
                    name=dist.name,
                    version=dist.version,
                    aliases=tuple(str(a) for a in v.get("aliases") or ()),
                    fix_versions=tuple(str(f) for f in v.get("fixed_in") or ()),
                    summary=str(v.get("summary") or v.get("details") or "")[:300].replace(
                        "\n", " "
                    ),
                )
            )
        return found


class _Osv:
    def __init__(self, host: HostPip, timeout_s: float, url: str | None) -> None:
        from pip_audit._service import OsvService

        kwargs: dict[str, Any] = {"timeout": int(max(1, timeout_s))}
        if url:
            kwargs["osv_url"] = url
        self.service = OsvService(**kwargs)
        if host.cert:
            self.service.session.verify = host.cert

    def query(self, dist: Distribution) -> list[Vulnerability] | None:
        from packaging.version import Version
        from pip_audit._service import ResolvedDependency, ServiceError

        try:
            _, results = self.service.query(
                ResolvedDependency(name=dist.name, version=Version(dist.version))
            )
        except ServiceError as exc:
            raise _Unreachable(str(exc) or type(exc).__name__) from None
        except Exception as exc:  # requests' connection errors and friends
            raise _Unreachable(f"{type(exc).__name__}: {exc}"[:200]) from None
        return [
            Vulnerability(
                id=str(r.id),
                name=dist.name,
                version=dist.version,
                aliases=tuple(sorted(str(a) for a in r.aliases)),
                fix_versions=tuple(str(f) for f in r.fix_versions),
                summary=str(r.description)[:300],
            )
            for r in results
        ]


class PipAuditScanner(VulnerabilityScanner):
    """Scan with the host index's JSON API, else OSV (pip-audit's service)."""

    def __init__(
        self,
        *,
        service: ServiceChoice = "auto",
        env: Mapping[str, str] | None = None,
        osv_url: str | None = None,
        timeout_s: float = 15.0,
        cache_dir: Path | None = None,
        cache_ttl_s: float = 3600.0,
    ) -> None:
        self.choice = service
        self.env = env
        self.osv_url = osv_url
        self.timeout_s = timeout_s
        #: answers (never failures) are kept this long per service and release; 0 disables
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir() / "scans"
        self.cache_ttl_s = cache_ttl_s
        self._chosen: tuple[str, _IndexJson | _Osv] | None = None

    def _cache_path(self, service: str, dist: Distribution) -> Path:
        key = f"{service}\n{self.osv_url or ''}\n{dist.name}=={dist.version}"
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def _cached(
        self, service: str, dist: Distribution
    ) -> tuple[bool, list[Vulnerability] | None]:
        """``(hit, answer)``; an answer of None is a remembered "the service has no data"."""
        if self.cache_ttl_s <= 0:
            return False, None
        try:
            data = json.loads(self._cache_path(service, dist).read_text("utf-8"))
            if time.time() - float(data["created"]) > self.cache_ttl_s:
                return False, None
            if data["vulnerabilities"] is None:
                return True, None
            return True, [Vulnerability(**{**v, "aliases": tuple(v["aliases"]),
                                     "fix_versions": tuple(v["fix_versions"])})
                    for v in data["vulnerabilities"]]
        except (OSError, ValueError, KeyError, TypeError):
            return False, None

    def _store(
        self, service: str, dist: Distribution, found: list[Vulnerability] | None
    ) -> None:
        if self.cache_ttl_s <= 0:
            return
        with contextlib.suppress(OSError):
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            path = self._cache_path(service, dist)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            vulns = None if found is None else [v.to_dict() for v in found]
            body = {"created": time.time(), "vulnerabilities": vulns}
            tmp.write_text(json.dumps(body), "utf-8")
            os.replace(tmp, path)

    def _service(self, probe: str) -> tuple[str, _IndexJson | _Osv]:
        if self._chosen is None:
            self._chosen = self._choose(probe)
        return self._chosen

    def _choose(self, probe: str) -> tuple[str, _IndexJson | _Osv]:
        host = host_pip(self.env)
        index = _IndexJson(host, self.timeout_s)
        if self.choice == "index" or (self.choice == "auto" and index.available(probe)):
            return f"the index's JSON API at {host.describe()}", index
        return "OSV through pip-audit", _Osv(host, self.timeout_s, self.osv_url)

    def _service_file(self) -> Path:
        key = f"{self.choice}\n{config_key(self.env)}\n{self.osv_url or ''}"
        return self.cache_dir / f"service-{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    def _remembered_service(self) -> str | None:
        # which service answered last time for this configuration, so a fully cached scan
        # needs neither a probe nor pip's configuration read again within the TTL
        if self.cache_ttl_s <= 0:
            return None
        try:
            path = self._service_file()
            if time.time() - path.stat().st_mtime > self.cache_ttl_s:
                return None
            return path.read_text("utf-8") or None
        except OSError:
            return None

    def _remember_service(self, name: str) -> None:
        if self.cache_ttl_s > 0:
            with contextlib.suppress(OSError):
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                self._service_file().write_text(name, "utf-8")

    def scan(self, distributions: Sequence[Distribution]) -> ScanReport:
        if not distributions:
            return ScanReport(service="none", reachable=True)
        results: dict[str, list[Vulnerability] | None] = {}
        errors: list[str] = []
        remembered_as = self._chosen[0] if self._chosen else self._remembered_service()
        todo = []
        for dist in distributions:
            hit, answer = self._cached(remembered_as, dist) if remembered_as else (False, None)
            if hit:
                results[f"{dist.name}=={dist.version}"] = answer
            else:
                todo.append(dist)
        name = remembered_as or ""
        if todo:
            name, service = self._service(todo[0].name)
            self._remember_service(name)

            def one(dist: Distribution) -> None:
                key = f"{dist.name}=={dist.version}"
                try:
                    found = service.query(dist)
                except _Unreachable as exc:
                    errors.append(str(exc))
                    results[key] = None
                    return
                results[key] = found
                self._store(name, dist, found)  # "no data" too: it is an answer, not an outage

            with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
                list(pool.map(one, todo))
        unscanned = tuple(sorted(k for k, v in results.items() if v is None))
        vulns = tuple(
            sorted(
                (v for found in results.values() if found for v in found),
                key=lambda v: (v.name, v.id),
            )
        )
        reachable = len(errors) < len(distributions)
        error = errors[0] if errors else None
        return ScanReport(
            service=name,
            reachable=reachable,
            vulnerabilities=vulns,
            unscanned=unscanned,
            error=error,
        )
