"""The allowlist's data model and policy section (no engine needed)."""

from __future__ import annotations

import pytest

from cellblock.network import Egress, InvalidEgressError, _pip, name_allowed
from cellblock.policy import Policy
from cellblock.sandbox import InvalidLimitsError, Limits


def policy(profile: dict, network: dict | None = None) -> Policy:  # type: ignore[type-arg]
    data = {
        "version": 1,
        "name": "t",
        "decisions": {"none": "allow", "low": "allow", "medium": "allow", "high": "block",
                      "critical": "block"},
        "profiles": {"fetch": profile},
        "decision_profiles": {"allow": "fetch", "restrict": "fetch", "review": "fetch"},
    }
    if network is not None:
        data["network"] = network
    return Policy.from_dict(data)


def test_names_and_suffix_patterns_match_exactly() -> None:
    allow = ("files.example.invalid", "*.mirror.invalid")
    assert name_allowed("files.example.invalid", allow)
    assert name_allowed("FILES.example.invalid.", allow)
    assert name_allowed("a.b.mirror.invalid", allow)
    assert not name_allowed("mirror.invalid", allow)  # the pattern is for names below it
    assert not name_allowed("evilmirror.invalid", allow)
    assert not name_allowed("files.example.invalid.attacker.invalid", allow)
    assert not name_allowed("x.files.example.invalid", allow)


@pytest.mark.parametrize("entry", ["10.0.0.1", "*.10.0.0.1", "::1", "[::1]", "*.invalid", "*",
                                   "exa mple.invalid", "-bad.invalid", ""])
def test_bad_allow_entries_are_refused(entry: str) -> None:
    with pytest.raises(InvalidEgressError):
        Egress(allow=(entry,))


def test_egress_bounds() -> None:
    with pytest.raises(InvalidEgressError):
        Egress(ports=(0,))
    with pytest.raises(InvalidEgressError):
        Egress(ports=())
    with pytest.raises(InvalidEgressError):
        Egress(budget_bytes=10)
    with pytest.raises(InvalidEgressError):
        Egress(hosts=(("a.invalid", "not-an-address"),))


def test_pip_index_expands_to_the_hosts_pip_is_configured_with(monkeypatch: pytest.MonkeyPatch) -> None:
    _pip.pip_config.cache_clear()
    monkeypatch.setenv("PIP_INDEX_URL", "https://index.cellblock-test.invalid/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://extra.cellblock-test.invalid/simple")
    try:
        hosts = _pip.index_hosts()
    finally:
        _pip.pip_config.cache_clear()
    assert hosts[:2] == ("index.cellblock-test.invalid", "extra.cellblock-test.invalid")
    resolved = Egress(allow=("$pip-index", "docs.invalid")).resolve(hosts)
    assert resolved.allow[:2] == hosts[:2] and "docs.invalid" in resolved.allow


def test_without_an_index_url_pip_own_default_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from pip._internal.models.index import PyPI

    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setattr(_pip, "pip_config", lambda: {})
    assert _pip.index_hosts() == (PyPI.netloc, PyPI.file_storage_domain)


def test_the_ca_bundle_is_the_one_pip_uses(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bundle = tmp_path / "corp.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("PIP_CERT", str(bundle))
    assert _pip.ca_bundle_path() == bundle


def test_limits_need_an_egress_for_allowlist_and_refuse_runsc() -> None:
    with pytest.raises(InvalidLimitsError):
        Limits(network="allowlist")
    with pytest.raises(InvalidLimitsError):
        Limits(network="none", egress=Egress())
    with pytest.raises(InvalidLimitsError, match="gVisor"):
        Limits(network="allowlist", egress=Egress(), runtime="runsc")
    loose = Limits(network="allowlist", egress=Egress(allow=("a.invalid",)))
    assert loose.loosenings() == ["network"]
    # a caller can only tighten: none wins
    assert loose.tighten(Limits()).network == "none"
    assert Limits.from_dict(loose.to_dict()) == loose


def test_policy_allowlist_is_a_recorded_loosening_and_resolves_to_runc() -> None:
    p = policy({"network": "allowlist", "runtime": "auto"},
               {"allow": ["$pip-index", "*.docs.invalid"], "ports": [443], "budget": "8m",
                "ca_bundle": "image"})
    assert "profiles.fetch.network" in p.loosenings()
    decision = p.decide("none", runtimes=frozenset({"runc", "runsc"}))
    assert decision.limits is not None
    assert decision.limits.runtime == "runc"
    assert decision.limits.egress == Egress(
        allow=("$pip-index", "*.docs.invalid"), ports=(443,), budget_bytes=8 * 1024 * 1024
    )
    assert "budget: 8m" in p.to_yaml()
    assert Policy.from_dict(p.to_dict()) == p


def test_policy_refuses_allowlist_under_runsc_and_bad_entries() -> None:
    from cellblock.policy import PolicyError

    with pytest.raises(PolicyError, match="gVisor"):
        policy({"network": "allowlist", "runtime": "runsc"})
    with pytest.raises(PolicyError, match=r"network\.allow\.0"):
        policy({"network": "allowlist"}, {"allow": ["192.168.1.1"]})
    with pytest.raises(PolicyError, match="host"):
        policy({"network": "host"})


def test_presets_keep_network_none() -> None:
    from cellblock.policy import load_policy

    for name in ("strict", "standard", "trusted-dev"):
        p = load_policy(name).policy
        assert all(profile.network == "none" for profile in p.profiles.values())
        assert not any(item.endswith(".network") for item in p.loosenings())
