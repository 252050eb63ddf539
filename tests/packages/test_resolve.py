"""Resolution against the host's configured index: real downloads of small pinned wheels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cellblock.packages import (
    HashMismatchError,
    IndexUnreachableError,
    InvalidSpecError,
    NoSuchVersionError,
    PipResolver,
    SdistOnlyError,
    Target,
    UnknownPackageError,
    WheelCache,
    WrongPlatformError,
    read_requirements_file,
    sha256_file,
)

TABULATE_SHA = "024ca478df22e9340661486f85298cff5f6dcdba14f3813e8830015b9ed1948f"


def test_pinned_wheel_is_downloaded_hash_checked_and_cached(resolver: PipResolver) -> None:
    res = resolver.resolve(["tabulate==0.9.0"])
    (dist,) = res.distributions
    assert (dist.name, dist.version, dist.requested) == ("tabulate", "0.9.0", True)
    assert dist.sha256 == TABULATE_SHA == sha256_file(dist.path)
    assert dist.path.parent.name == dist.sha256  # content-addressed
    again = resolver.resolve(["tabulate==0.9.0"])
    assert again.cached and again.distributions[0].path == dist.path


def test_dependencies_are_resolved_for_the_image_target(resolver: PipResolver) -> None:
    res = resolver.resolve(["ecdsa==0.19.2"])
    names = {d.name: d for d in res.distributions}
    assert set(names) == {"ecdsa", "six"}
    assert names["ecdsa"].requested and not names["six"].requested
    assert res.total_bytes == sum(d.size for d in res.distributions)


def test_binary_wheel_matches_the_image_platform(tmp_path: Path) -> None:
    # a small compiled wheel: must be the cp311 manylinux build, whatever the host runs
    r = PipResolver(Target(python_version=(3, 11)), cache=WheelCache(tmp_path))
    (dist,) = r.resolve(["markupsafe==2.1.5"]).distributions
    assert "cp311-cp311-manylinux" in dist.filename and dist.filename.endswith("x86_64.whl")


def test_corrupted_cache_entry_is_evicted_and_fetched_again(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path)
    r = PipResolver(cache=cache)
    (dist,) = r.resolve(["tabulate==0.9.0"]).distributions
    dist.path.chmod(0o644)
    dist.path.write_bytes(b"not a wheel")
    res = r.resolve(["tabulate==0.9.0"])
    assert not res.cached and sha256_file(res.distributions[0].path) == TABULATE_SHA


@pytest.mark.parametrize(
    ("spec", "error", "words"),
    [
        ("cellblock-no-such-package-zz", UnknownPackageError, "no package named"),
        ("tabulate==99.0", NoSuchVersionError, "no release matching"),
        ("pycrypto==2.6.1", SdistOnlyError, "only as source"),
        ("pywin32==306", WrongPlatformError, "none for the sandbox image"),
    ],
)
def test_bad_requirements_say_what_is_wrong(
    resolver: PipResolver, spec: str, error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as info:
        resolver.resolve([spec])
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "spec", ["-e .", "--index-url=http://127.0.0.1/", "x @ file:///etc/passwd", "", "a b c"]
)
def test_specs_that_are_not_plain_requirements_are_refused(resolver: PipResolver, spec: str) -> None:
    with pytest.raises(InvalidSpecError):
        resolver.resolve([spec])


def test_pinned_hash_mismatch_is_refused(tmp_path: Path, resolver: PipResolver) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("tabulate==0.9.0 --hash=sha256:" + "0" * 64 + "\n")
    specs, hashes = read_requirements_file(req)
    with pytest.raises(HashMismatchError, match="not among the hashes pinned"):
        resolver.resolve(specs, hashes=hashes)


def test_requirements_file_refuses_index_options(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("--extra-index-url http://127.0.0.1:1/\ntabulate\n")
    with pytest.raises(InvalidSpecError, match="only requirement lines"):
        read_requirements_file(req)


def test_unreachable_index_is_a_clear_error(tmp_path: Path, dead_index_env: dict[str, str]) -> None:
    r = PipResolver(cache=WheelCache(tmp_path), env=dead_index_env, retries=0)
    with pytest.raises(IndexUnreachableError, match="cannot be reached"):
        r.resolve(["tabulate==0.9.0"])


def test_wheelhouse_works_with_the_index_unreachable(
    tmp_path: Path, resolver: PipResolver, dead_index_env: dict[str, str]
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    for d in resolver.resolve(["ecdsa==0.19.2"]).distributions:
        shutil.copyfile(d.path, house / d.filename)
    r = PipResolver(cache=WheelCache(tmp_path / "c"), wheelhouse=house, env=dead_index_env)
    res = r.resolve(["ecdsa==0.19.2"])
    assert {d.name for d in res.distributions} == {"ecdsa", "six"}
    assert res.source.startswith("wheelhouse")
    with pytest.raises(UnknownPackageError, match="wheelhouse"):
        r.resolve(["tabulate==0.9.0"])
