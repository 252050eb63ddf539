"""The packages: section of a profile, image profiles, and user-declared images."""

from __future__ import annotations

import pytest

from cellblock.policy import Policy, PolicyValidationError, load_preset, parse_policy
from cellblock.sandbox.interface import MIB


def _strict_with(**changes: object) -> dict[str, object]:
    data = load_preset("strict").to_human_dict()
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]  # type: ignore[index, assignment]
        node[last] = value  # type: ignore[index]
    return data


def test_strict_defaults_admit_no_packages_and_run_on_base() -> None:
    policy = load_preset("strict")
    for profile in policy.profiles.values():
        assert profile.image == "base" and "data" in profile.permitted_images()
        rules = profile.packages.to_rules()
        assert not rules.allowed
        assert (rules.vulnerabilities, rules.scan_unavailable) == ("block", "block")
    assert policy.loosenings() == []


def test_packages_section_round_trips_in_human_units() -> None:
    data = _strict_with(
        profiles__open__packages={
            "allowed": True,
            "allow": ["tabulate", "types-*"],
            "deny": ["evil*"],
            "max_download": "8m",
            "vulnerabilities": "review",
        }
    )
    policy = Policy.from_dict(data)
    pk = policy.profiles["open"].packages
    assert pk.max_download == 8 * MIB and pk.to_rules().allow == ("tabulate", "types-*")
    assert parse_policy(policy.to_yaml()) == policy
    assert "profiles.open.packages.vulnerabilities" in policy.loosenings()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"profiles__open__packages": {"vulnerabilities": "ignore"}}, '"warn", "review" or "block"'),
        ({"profiles__open__packages": {"allow": ["no spaces allowed"]}}, "package name or glob"),
        ({"profiles__open__packages": {"max_download": "lots"}}, "a size such as 256m"),
        ({"profiles__open__image": "gpu"}, "an image profile (base, data)"),
        ({"profiles__open__images": ["data", "nope"]}, "profiles.open.images[1]"),
        ({"images": {"data": {"requirements": ["x"]}}}, "built-in image profile"),
        ({"images": {"mine": {"requirements": ["x @ file:///etc"]}}}, "a requirement such as"),
        ({"images": {"mine": {"requirements": ["ok"], "preload": ["os; rm"]}}}, "module name"),
    ],
)
def test_bad_package_and_image_settings_name_the_field(
    change: dict[str, object], words: str
) -> None:
    with pytest.raises(PolicyValidationError) as info:
        Policy.from_dict(_strict_with(**change))
    assert words in str(info.value)


def test_user_image_profile_can_be_named_by_a_profile() -> None:
    data = _strict_with(
        images={"reports": {"requirements": ["tabulate==0.9.0"], "preload": ["tabulate"]}},
        profiles__open__images=["data", "reports"],
    )
    policy = Policy.from_dict(data)
    assert policy.images["reports"].requirements == ["tabulate==0.9.0"]
    assert policy.profiles["open"].permitted_images() == ("base", "data", "reports")
