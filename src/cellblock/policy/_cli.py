"""``cellblock policy list | show [NAME|FILE] | validate FILE... | diff A B``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cellblock.policy._loader import (
    DEFAULT_PRESET,
    LoadedPolicy,
    format_path,
    load_policy,
    preset_names,
    preset_text,
)
from cellblock.policy._units import show
from cellblock.policy.errors import PolicyError, PolicyNotFoundError, PolicyValidationError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "policy",
        help="list, show, validate and compare policies",
        description="Policies decide what runs, under which limits, after assessment.",
    )
    actions = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    p_list = actions.add_parser("list", help="list the shipped presets and the policy in force")
    p_list.set_defaults(func=cmd_list)

    p_show = actions.add_parser("show", help="show a policy with every default filled in")
    p_show.add_argument(
        "policy", nargs="?", metavar="NAME|FILE", help="a preset name or a file (default: lookup)"
    )
    fmt = p_show.add_mutually_exclusive_group()
    fmt.add_argument("--raw", action="store_true", help="print the file as written, comments kept")
    fmt.add_argument("--json", action="store_true", help="print JSON in machine units")
    p_show.set_defaults(func=cmd_show)

    p_validate = actions.add_parser(
        "validate", help="check policy files; exit 0 if all are valid, 1 if not"
    )
    p_validate.add_argument("files", nargs="+", metavar="FILE")
    p_validate.set_defaults(func=cmd_validate)

    p_diff = actions.add_parser(
        "diff", help="compare two policies field by field; exit 0 if equal, 1 if they differ"
    )
    p_diff.add_argument("a", metavar="A", help="a preset name or a file")
    p_diff.add_argument("b", metavar="B", help="a preset name or a file")
    p_diff.set_defaults(func=cmd_diff)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def cmd_list(args: argparse.Namespace) -> int:
    from cellblock.policy._loader import load_preset

    labels = {n: f"{n} (default)" if n == DEFAULT_PRESET else n for n in preset_names()}
    width = max(len(label) for label in labels.values())
    for name, label in labels.items():
        print(f"{label:<{width}}  {_first_sentence(load_preset(name).description)}")
    try:
        loaded = load_policy()
    except PolicyError as exc:
        print(f"in force here: none, the policy found is not usable:\n{exc}", file=sys.stderr)
        return 0
    print(f"\nin force here: {loaded.describe()}")
    return 0


def _raw(loaded: LoadedPolicy) -> str:
    if loaded.preset is not None:
        return preset_text(loaded.preset)
    assert loaded.path is not None
    return loaded.path.read_text(encoding="utf-8")


def cmd_show(args: argparse.Namespace) -> int:
    loaded = load_policy(args.policy)
    if args.raw:
        sys.stdout.write(_raw(loaded))
    elif args.json:
        data = {"source": loaded.to_dict(), "policy": loaded.policy.to_dict()}
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        policy = loaded.policy
        loosenings = ", ".join(policy.loosenings()) or "none"
        print(f"# policy {policy.name!r} from {loaded.describe()}")
        print(f"# digest {policy.digest()}")
        print(f"# loosenings: {loosenings}")
        sys.stdout.write(policy.to_yaml())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    status = 0
    for file in args.files:
        try:
            loaded = load_policy(file)
        except PolicyValidationError as exc:
            status = 1
            for issue in exc.issues:
                print(issue)
            continue
        except PolicyNotFoundError as exc:
            status = 1
            print(f"{file}: {exc}")
            continue
        loosenings = loaded.policy.loosenings()
        note = f"; loosens {', '.join(loosenings)}" if loosenings else ""
        print(f"{file}: valid (policy {loaded.policy.name!r}{note})")
    return status


def _flatten(data: Any, prefix: tuple[str | int, ...] = ()) -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, (*prefix, key)))
        return out
    return {format_path(prefix): data}


def _value(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        return "{}"
    return show(value)


def diff_lines(a: LoadedPolicy, b: LoadedPolicy) -> list[str]:
    """``~ field: old -> new``, ``- field: old`` (only in A), ``+ field: new`` (only in B)."""
    left, right = _flatten(a.policy.to_human_dict()), _flatten(b.policy.to_human_dict())
    lines: list[str] = []
    for key, old in left.items():
        if key not in right:
            lines.append(f"- {key}: {_value(old)}")
        elif right[key] != old:
            lines.append(f"~ {key}: {_value(old)} -> {_value(right[key])}")
    lines.extend(f"+ {key}: {_value(new)}" for key, new in right.items() if key not in left)
    return lines


def cmd_diff(args: argparse.Namespace) -> int:
    a, b = load_policy(args.a), load_policy(args.b)
    lines = diff_lines(a, b)
    print(f"--- {a.describe()}")
    print(f"+++ {b.describe()}")
    if not lines:
        print("no differences")
        return 0
    for line in lines:
        print(line)
    return 1
