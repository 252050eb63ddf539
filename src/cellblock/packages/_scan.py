"""Vulnerability scanning of resolved distributions.

The service is the index the host's pip uses, when it serves the PyPI JSON API (``/pypi/<name>/
<version>/json`` carries the advisories PyPI publishes, the same feed pip-audit's ``pypi``
service reads); otherwise OSV through pip-audit's ``OsvService``. An index that serves only the
project document (``/pypi/<name>/json``, whose advisories are those of the latest release) still
answers for the latest release; any other version is reported as unscanned, never as clean.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from cellblock.packages._pipconfig import HostPip, host_pip
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
    ) -> None:
        self.choice = service
        self.env = env
        self.osv_url = osv_url
        self.timeout_s = timeout_s

    def _service(self, probe: str) -> tuple[str, _IndexJson | _Osv]:
        host = host_pip(self.env)
        index = _IndexJson(host, self.timeout_s)
        if self.choice == "index" or (self.choice == "auto" and index.available(probe)):
            return f"index JSON API ({host.describe()})", index
        return "osv (pip-audit)", _Osv(host, self.timeout_s, self.osv_url)

    def scan(self, distributions: Sequence[Distribution]) -> ScanReport:
        if not distributions:
            return ScanReport(service="none", reachable=True)
        name, service = self._service(distributions[0].name)
        results: dict[str, list[Vulnerability] | None] = {}
        errors: list[str] = []

        def one(dist: Distribution) -> None:
            key = f"{dist.name}=={dist.version}"
            try:
                results[key] = service.query(dist)
            except _Unreachable as exc:
                errors.append(str(exc))
                results[key] = None

        with ThreadPoolExecutor(max_workers=min(8, len(distributions))) as pool:
            list(pool.map(one, distributions))
        unscanned = tuple(sorted(k for k, v in results.items() if v is None))
        vulns = tuple(
            sorted(
                (v for found in results.values() if found for v in found),
                key=lambda v: (v.name, v.id),
            )
        )
        reachable = len(errors) < len(distributions)
        error = errors[0] if errors else None
        if unscanned and not errors:
            error = "the service has no data for " + ", ".join(unscanned)
        return ScanReport(
            service=name,
            reachable=reachable,
            vulnerabilities=vulns,
            unscanned=unscanned,
            error=error,
        )
