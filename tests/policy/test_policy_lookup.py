"""Lookup order: argument, $CELLBLOCK_POLICY, ./cellblock.yaml, user config, strict."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellblock.policy import PolicyNotFoundError, PolicyValidationError, load_policy, preset_text


def write(path: Path, name: str) -> Path:
    text = preset_text("standard").replace("name: standard", f"name: {name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def everywhere(isolated: Path, tmp_path: Path) -> dict[str, object]:
    """A policy at every step of the lookup."""
    env_file = write(tmp_path / "env" / "env.yaml", "from-env")
    write(isolated / "cellblock.yaml", "from-cwd")
    user = write(tmp_path / "config" / "cellblock" / "policy.yaml", "from-user")
    arg = write(tmp_path / "arg.yaml", "from-arg")
    return {"cwd": isolated, "env": {"CELLBLOCK_POLICY": str(env_file)}, "user": user, "arg": arg}


def test_default_is_strict(isolated: Path) -> None:
    loaded = load_policy(env={})
    assert (loaded.origin, loaded.preset, loaded.path) == ("default", "strict", None)
    assert loaded.describe() == 'preset "strict" (default)'


def test_argument_wins(everywhere: dict[str, object]) -> None:
    loaded = load_policy(everywhere["arg"], env=everywhere["env"])  # type: ignore[arg-type]
    assert (loaded.name, loaded.origin) == ("from-arg", "argument")


def test_argument_preset_name(everywhere: dict[str, object]) -> None:
    loaded = load_policy("trusted-dev", env=everywhere["env"])  # type: ignore[arg-type]
    assert (loaded.name, loaded.origin, loaded.preset) == ("trusted-dev", "argument", "trusted-dev")


def test_env_second(everywhere: dict[str, object]) -> None:
    loaded = load_policy(env=everywhere["env"])  # type: ignore[arg-type]
    assert (loaded.name, loaded.origin) == ("from-env", "environment")


def test_env_preset_name(isolated: Path) -> None:
    loaded = load_policy(env={"CELLBLOCK_POLICY": "standard"})
    assert (loaded.name, loaded.origin, loaded.preset) == ("standard", "environment", "standard")


def test_empty_env_is_unset(everywhere: dict[str, object]) -> None:
    loaded = load_policy(env={"CELLBLOCK_POLICY": ""})
    assert (loaded.name, loaded.origin) == ("from-cwd", "working-directory")


def test_cwd_third(everywhere: dict[str, object]) -> None:
    loaded = load_policy(env={})
    assert (loaded.name, loaded.origin) == ("from-cwd", "working-directory")
    assert loaded.path == everywhere["cwd"] / "cellblock.yaml"  # type: ignore[operator]


def test_explicit_cwd_argument(everywhere: dict[str, object], tmp_path: Path) -> None:
    other = tmp_path / "other"
    write(other / "cellblock.yaml", "other-cwd")
    assert load_policy(cwd=other, env={}).name == "other-cwd"
    assert load_policy("cellblock.yaml", cwd=other, env={}).name == "other-cwd"


def test_user_config_fourth(everywhere: dict[str, object]) -> None:
    (everywhere["cwd"] / "cellblock.yaml").unlink()  # type: ignore[operator]
    loaded = load_policy(env={})
    assert (loaded.name, loaded.origin) == ("from-user", "user-config")
    assert loaded.path == everywhere["user"]


def test_user_config_override(isolated: Path, tmp_path: Path) -> None:
    user = write(tmp_path / "elsewhere.yaml", "explicit-user")
    assert load_policy(env={}, user_config=user).name == "explicit-user"
    assert load_policy(env={}, user_config=tmp_path / "missing.yaml").name == "strict"


def test_env_defaults_to_process_environment(
    everywhere: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLBLOCK_POLICY", "trusted-dev")
    assert load_policy().name == "trusted-dev"


def test_unknown_name(isolated: Path) -> None:
    with pytest.raises(PolicyNotFoundError) as info:
        load_policy("strictest", env={})
    assert str(info.value) == (
        "no policy preset named 'strictest'; presets are strict, standard, trusted-dev "
        "(or give the path of a YAML file)"
    )
    assert info.value.exit_code == 64


def test_missing_file(isolated: Path) -> None:
    with pytest.raises(PolicyNotFoundError, match="does not exist"):
        load_policy("nope.yaml", env={})
    with pytest.raises(PolicyNotFoundError, match=r"\$CELLBLOCK_POLICY names policy file"):
        load_policy(env={"CELLBLOCK_POLICY": "./nope.yaml"})


def test_name_that_is_a_file_in_cwd(isolated: Path) -> None:
    write(isolated / "mine", "plain-name")
    assert load_policy("mine", env={}).name == "plain-name"


def test_invalid_cwd_file_is_an_error_not_skipped(isolated: Path) -> None:
    (isolated / "cellblock.yaml").write_text("version: 1\nname: x\nbogus: 1\n")
    with pytest.raises(PolicyValidationError) as info:
        load_policy(env={})
    messages = [str(issue) for issue in info.value.issues]
    assert any(m.startswith(f"{isolated / 'cellblock.yaml'}:3:1: bogus: ") for m in messages)


def test_relative_audit_paths_anchor_at_the_file(isolated: Path, tmp_path: Path) -> None:
    text = preset_text("strict").replace(
        "  # directory: /var/log/cellblock", "  directory: logs\n  witness: ~/witness"
    )
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "p.yaml").write_text(text)
    policy = load_policy(folder / "p.yaml", env={}).policy
    assert policy.audit.directory == folder.resolve() / "logs"
    assert policy.audit.witness == Path("~/witness").expanduser()


def test_loaded_to_dict(isolated: Path) -> None:
    loaded = load_policy("trusted-dev", env={})
    assert loaded.to_dict() == {
        "name": "trusted-dev",
        "digest": loaded.policy.digest(),
        "origin": "argument",
        "path": None,
        "preset": "trusted-dev",
        "loosenings": ["assessment.allow_skip"],
    }
