"""Reading policies: YAML with line numbers, error mapping, presets, and the lookup order."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import platformdirs
import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cellblock._inputs import read_regular_file
from cellblock.policy._units import format_size, show
from cellblock.policy.errors import Issue, PolicyNotFoundError, PolicyValidationError
from cellblock.policy.model import Policy

DEFAULT_PRESET = "strict"
ENV_VAR = "CELLBLOCK_POLICY"
CWD_FILE = "cellblock.yaml"
USER_FILE = "policy.yaml"
MAX_POLICY_BYTES = 1024 * 1024
_MAX_NODES = 100_000
# PyYAML composes nodes recursively: thousands of nested "[" end in a RecursionError. A policy is
# a few levels deep; anything past this is refused with an issue before composing.
_MAX_DEPTH = 64
_OPENS = (
    yaml.FlowSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.BlockMappingStartToken,
)
_CLOSES = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)

Loc = tuple[str | int, ...]
Origin = Literal["argument", "environment", "working-directory", "user-config", "default"]


# -- YAML with marks -----------------------------------------------------------------------------


@dataclass
class _Document:
    data: Any
    marks: dict[Loc, yaml.Mark]  # where each value starts
    key_marks: dict[Loc, yaml.Mark]  # where the key of each mapping entry starts


class _Builder:
    """Turns a composed node tree into plain data, recording marks and duplicate keys."""

    def __init__(self, loader: yaml.SafeLoader, source: str) -> None:
        self.loader = loader
        self.source = source
        self.doc = _Document(None, {}, {})
        self.issues: list[Issue] = []
        self.count = 0
        self.stack: set[int] = set()

    def issue(self, mark: yaml.Mark | None, loc: Loc, expected: str, found: str) -> None:
        self.issues.append(_issue(self.source, mark, loc, expected, found))

    def build(self, node: Node, loc: Loc) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise _TooLarge
        if id(node) in self.stack:
            self.issue(node.start_mark, loc, "a value", "an alias that refers to itself")
            return None
        self.doc.marks.setdefault(loc, node.start_mark)
        self.stack.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, loc)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
            return self._scalar(node, loc)
        finally:
            self.stack.discard(id(node))

    def _scalar(self, node: Node, loc: Loc) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.issue(node.start_mark, loc, "a plain YAML value", problem)
            return None

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merges = [v for k, v in node.value if k.tag == "tag:yaml.org,2002:merge"]
        # Merged mappings first (earlier ones win), explicit keys then override them.
        for merge in reversed(merges):
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for src in reversed(sources):
                if not isinstance(src, MappingNode):
                    self.issue(src.start_mark, loc, "a mapping to merge", "something else")
                    continue
                merged = self._mapping(src, loc)
                result.update(merged)
        seen: dict[Any, yaml.Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if not isinstance(key_node, ScalarNode):
                kind = "a mapping" if isinstance(key_node, MappingNode) else "a list"
                self.issue(key_node.start_mark, loc, "a plain key", kind)
                continue
            key = self._scalar(key_node, loc)
            try:
                hash(key)
            except TypeError:  # pragma: no cover - scalars are hashable
                key = str(key)
            child = (*loc, key)
            if key in seen:
                first = seen[key]
                self.issue(
                    key_node.start_mark,
                    child,
                    "each key once",
                    f"{show(key)} again (first on line {first.line + 1}, "
                    f"column {first.column + 1})",
                )
                continue
            seen[key] = key_node.start_mark
            self.doc.key_marks[child] = key_node.start_mark
            self.doc.marks[child] = value_node.start_mark
            result[key] = self.build(value_node, child)
        return result


class _TooLarge(Exception):
    pass


def _too_deep(text: str) -> yaml.Mark | None:
    """Where the nesting first goes past ``_MAX_DEPTH``, from the tokens (no recursion)."""
    try:
        scanner = yaml.SafeLoader(text)
    except yaml.YAMLError:
        return None  # the composer reports the bad character with its position
    depth = 0
    try:
        while (token := scanner.get_token()) is not None:  # type: ignore[no-untyped-call]
            if isinstance(token, _OPENS):
                depth += 1
                if depth > _MAX_DEPTH:
                    mark: yaml.Mark = token.start_mark
                    return mark
            elif isinstance(token, _CLOSES):
                depth -= 1
    except yaml.YAMLError:
        return None  # the composer reports the syntax error with its position
    finally:
        scanner.dispose()
    return None


def _depth_issue(source: str, mark: yaml.Mark | None) -> PolicyValidationError:
    return PolicyValidationError(
        source,
        [_issue(source, mark, (), f"a policy nested at most {_MAX_DEPTH} levels deep", "more")],
    )


def _compose(text: str, source: str) -> _Document:
    deep = _too_deep(text)
    if deep is not None:
        raise _depth_issue(source, deep)
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML refuses (NUL, most controls)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        found = f"the character #x{exc.character:04x}, which YAML does not allow"
        raise PolicyValidationError(
            source, [Issue(source, line, column, "", "printable YAML text", found)]
        ) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            problem = exc.problem or exc.context or "unknown problem"
            raise PolicyValidationError(
                source,
                [_issue(source, exc.problem_mark, (), "valid YAML", f"a syntax error: {problem}")],
            ) from None
        except yaml.YAMLError as exc:
            raise PolicyValidationError(
                source, [_issue(source, None, (), "valid YAML", f"a syntax error: {exc}")]
            ) from None
        if node is None:
            raise PolicyValidationError(
                source, [Issue(source, 1, 1, "", "a mapping of policy fields", "an empty document")]
            )
        builder = _Builder(loader, source)
        try:
            builder.doc.data = builder.build(node, ())
        except _TooLarge:
            raise PolicyValidationError(
                source,
                [_issue(source, node.start_mark, (), "a policy of at most 100000 nodes", "more")],
            ) from None
        except RecursionError:  # aliases of aliases nest without nested brackets
            raise _depth_issue(source, node.start_mark) from None
        if builder.issues:
            raise PolicyValidationError(source, _sorted(builder.issues))
        return builder.doc
    finally:
        loader.dispose()


# -- mapping pydantic errors to issues -----------------------------------------------------------

_TYPE_EXPECTED = {
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}

_PYDANTIC_TAG = re.compile(r"^[a-z][a-z-]*\[")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(loc: Loc) -> str:
    """``("profiles", "restricted", "memory")`` -> ``profiles.restricted.memory``."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
            continue
        if isinstance(part, str):
            text = part if _PLAIN_KEY.match(part) else json.dumps(part, ensure_ascii=False)
        else:
            text = show(part)
        out += f".{text}" if out else text
    return out


def _issue(
    source: str, mark: yaml.Mark | None, loc: Loc, expected: str, found: str, hint: str = ""
) -> Issue:
    line = None if mark is None else mark.line + 1
    column = None if mark is None else mark.column + 1
    return Issue(source, line, column, format_path(loc), expected, found, hint or None)


def _sorted(issues: list[Issue]) -> list[Issue]:
    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=lambda i: (i.line or 0, i.column or 0, i.path))


def _clean_loc(loc: tuple[int | str, ...], data: Any) -> tuple[Loc, bool]:
    """Drop pydantic's internal segments; report whether the error is about a mapping key."""
    out: list[str | int] = []
    current = data
    for seg in loc:
        if seg == "[key]":
            return tuple(out), True
        if isinstance(seg, str) and _PYDANTIC_TAG.match(seg):
            continue  # a union branch or validator name, not a field
        if isinstance(current, dict | list):
            try:
                current = current[seg]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                current = None
        else:
            current = None
        out.append(seg)
    return tuple(out), False


def _unwrap(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) not in (dict, None) and len(args) == 1:
        return args[0]
    return annotation


def _model_at(loc: Loc) -> tuple[type[BaseModel] | None, str | None]:
    """The model class that holds the last field of ``loc``, and that field's description."""
    current: Any = Policy
    for seg in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(seg))
            if info is None:
                return None, None
            current = _unwrap(info.annotation)
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None, None
    if isinstance(current, type) and issubclass(current, BaseModel) and loc:
        info = current.model_fields.get(str(loc[-1]))
        return current, None if info is None else info.description
    return None, None


def _mark_for(doc_marks: Mapping[Loc, yaml.Mark], loc: Loc) -> yaml.Mark | None:
    for end in range(len(loc), -1, -1):
        mark = doc_marks.get(loc[:end])
        if mark is not None:
            return mark
    return None


def _suggest(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"?' if close else ""


def _one(
    err: ErrorDetails,
    source: str,
    data: Any,
    marks: Mapping[Loc, yaml.Mark],
    key_marks: Mapping[Loc, yaml.Mark],
) -> Issue:
    loc, about_key = _clean_loc(err["loc"], data)
    if about_key and loc:
        loc = (*loc[:-1], err["input"])  # the key as written; pydantic's loc stringifies it
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    hint = ""
    if kind == "policy":
        loc = (*loc, *ctx.get("subpath", ()))
        expected, found, hint = str(ctx["expected"]), str(ctx["found"]), str(ctx["hint"])
    elif kind == "missing":
        _, description = _model_at(loc)
        expected, found = description or "a value", "nothing"
        parent = loc[:-1]
        mark = key_marks.get(parent) or _mark_for(marks, parent)
        return _issue(source, mark, loc, expected, found, "the field is required")
    elif kind == "extra_forbidden":
        model, _ = _model_at(loc)
        known = list(model.model_fields) if model is not None else []
        expected = "one of " + ", ".join(known) if known else "no such field"
        name = str(loc[-1])
        found = f"unknown field {show(loc[-1])}"
        hint = _suggest(name, known)
        return _issue(
            source, key_marks.get(loc) or _mark_for(marks, loc), loc, expected, found, hint
        )
    elif kind == "invalid_key":
        parent = loc[:-1]
        mark = key_marks.get(loc) or _mark_for(marks, parent)
        return _issue(source, mark, parent, "text keys", show(err["input"]))
    elif kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", '"')
        found = show(err["input"])
    else:
        expected = _TYPE_EXPECTED.get(kind, err["msg"][0].lower() + err["msg"][1:])
        found = show(err["input"])
        if about_key:
            expected += " as the key"
    mark = key_marks.get(loc) if about_key else None
    if mark is None:
        mark = _mark_for(marks, loc)
    return _issue(source, mark, loc, expected, found, hint)


def issues_from_validation_error(
    exc: ValidationError,
    source: str,
    data: Any,
    marks: Mapping[Loc, yaml.Mark],
    key_marks: Mapping[Loc, yaml.Mark],
) -> list[Issue]:
    """One :class:`Issue` per pydantic error, placed on the YAML node it is about."""
    return _sorted([_one(err, source, data, marks, key_marks) for err in exc.errors()])


# -- parsing -------------------------------------------------------------------------------------


def parse_policy(text: str, *, source: str = "<string>") -> Policy:
    """Validate a policy's YAML text; raise :class:`PolicyValidationError` naming ``source``."""
    doc = _compose(text, source)
    if not isinstance(doc.data, dict):
        raise PolicyValidationError(
            source,
            [
                _issue(
                    source,
                    doc.marks.get(()),
                    (),
                    "a mapping of policy fields",
                    show(doc.data) if doc.data is not None else "null",
                )
            ],
        )
    try:
        return Policy.model_validate(doc.data)
    except ValidationError as exc:
        raise PolicyValidationError(
            source, issues_from_validation_error(exc, source, doc.data, doc.marks, doc.key_marks)
        ) from None


def _decode(raw: bytes, source: str) -> str:
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyValidationError(
            source,
            [
                Issue(
                    source,
                    1,
                    1,
                    "",
                    f"a file of at most {format_size(MAX_POLICY_BYTES)}",
                    f"{len(raw)} bytes",
                )
            ],
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        raise PolicyValidationError(
            source, [Issue(source, line, column, "", "UTF-8 text", f"byte 0x{raw[exc.start]:02x}")]
        ) from None


def load_policy_file(path: str | Path, *, source: str | None = None) -> Policy:
    """Read and validate a policy file; relative audit paths are taken from the file's folder.

    Messages name the file as ``source`` (default: ``path`` as given).
    """
    source = str(path) if source is None else source
    file = Path(path).expanduser()
    try:
        raw = read_regular_file(file)  # a FIFO would block forever
    except FileNotFoundError:
        raise PolicyNotFoundError(f"policy file {source} does not exist") from None
    except OSError as exc:
        raise PolicyNotFoundError(
            f"cannot read policy file {source}: {exc.strerror or exc}"
        ) from None
    policy = parse_policy(_decode(raw, source), source=source)
    return _anchor_paths(policy, file.resolve().parent)


def _anchor_paths(policy: Policy, base: Path) -> Policy:
    audit = policy.audit
    changes: dict[str, Path] = {}
    for name in ("directory", "signing_key", "witness"):
        value: Path | None = getattr(audit, name)
        if value is not None:
            value = value.expanduser()
            changes[name] = value if value.is_absolute() else base / value
    if not changes:
        return policy
    return policy.model_copy(update={"audit": audit.model_copy(update=changes)})


# -- presets -------------------------------------------------------------------------------------


def _presets_dir() -> Any:
    return resources.files("cellblock.policy").joinpath("presets")


def preset_names() -> list[str]:
    """The shipped presets, ``strict`` first."""
    names = sorted(
        entry.name[: -len(".yaml")]
        for entry in _presets_dir().iterdir()
        if entry.name.endswith(".yaml")
    )
    return sorted(names, key=lambda n: (n != DEFAULT_PRESET, n))


def preset_text(name: str) -> str:
    """The YAML source of a preset, comments included (to copy and edit)."""
    if name not in preset_names():
        raise PolicyNotFoundError(_unknown_name_message(name))
    text: str = _presets_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return text


def load_preset(name: str) -> Policy:
    """Validate a shipped preset."""
    return parse_policy(preset_text(name), source=f"presets/{name}.yaml")


def _unknown_name_message(name: str) -> str:
    names = ", ".join(preset_names())
    return f"no policy preset named {name!r}; presets are {names} (or give the path of a YAML file)"


# -- lookup --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy and where it came from.

    ``origin`` says which step of the lookup found it; ``path`` is the file (``None`` for a
    preset) and ``preset`` the preset name (``None`` for a file).
    """

    policy: Policy
    origin: Origin
    path: Path | None = None
    preset: str | None = None

    @property
    def name(self) -> str:
        return self.policy.name

    def describe(self) -> str:
        """For people: ``preset "strict" (default)``, ``/x/cellblock.yaml (working directory)``."""
        what = f'preset "{self.preset}"' if self.preset is not None else str(self.path)
        why = {
            "argument": "given",
            "environment": f"from ${ENV_VAR}",
            "working-directory": "working directory",
            "user-config": "user config",
            "default": "default",
        }[self.origin]
        return f"{what} ({why})"

    def to_dict(self) -> dict[str, Any]:
        """What the audit log records about the policy in force."""
        return {
            "name": self.policy.name,
            "digest": self.policy.digest(),
            "origin": self.origin,
            "path": None if self.path is None else str(self.path),
            "preset": self.preset,
            "loosenings": self.policy.loosenings(),
        }


def _looks_like_file(value: str) -> bool:
    return (
        "/" in value
        or os.sep in value
        or value.startswith((".", "~"))
        or value.endswith((".yaml", ".yml"))
    )


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for a file, for example: then it is not one
        return False


def _resolve(value: str | Path, origin: Origin, cwd: Path) -> LoadedPolicy:
    if isinstance(value, str) and not _looks_like_file(value):
        if value in preset_names():
            return LoadedPolicy(load_preset(value), origin, None, value)
        if not _is_file(cwd / value):
            raise PolicyNotFoundError(_unknown_name_message(value))
    shown = Path(value).expanduser()
    file = shown if shown.is_absolute() else cwd / shown
    try:
        policy = load_policy_file(file, source=str(value))
    except PolicyNotFoundError:
        if origin == "environment":
            raise PolicyNotFoundError(
                f"${ENV_VAR} names policy file {value}, which does not exist or cannot be read"
            ) from None
        raise
    return LoadedPolicy(policy, origin, file, None)


def user_policy_path() -> Path:
    """``<user config dir>/policy.yaml`` (for example ``~/.config/cellblock/policy.yaml``)."""
    return Path(platformdirs.user_config_dir("cellblock")) / USER_FILE


def load_policy(
    name_or_path: str | Path | None = None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user_config: Path | None = None,
) -> LoadedPolicy:
    """Find and validate the policy in force.

    Lookup order: ``name_or_path`` (a preset name or a file), ``$CELLBLOCK_POLICY`` (same),
    ``cellblock.yaml`` in ``cwd``, ``user_config`` (default :func:`user_policy_path`), then the
    ``strict`` preset. A value is a file when it contains a slash, starts with ``.`` or ``~``,
    ends in ``.yaml``/``.yml``, or is not a preset name but an existing file. Relative files are
    taken from ``cwd`` (default: the process's working directory).
    """
    base = Path.cwd() if cwd is None else cwd
    environ = os.environ if env is None else env
    if name_or_path is not None and str(name_or_path) != "":
        return _resolve(name_or_path, "argument", base)
    from_env = environ.get(ENV_VAR, "")
    if from_env:
        return _resolve(from_env, "environment", base)
    local = base / CWD_FILE
    if local.is_file():
        return LoadedPolicy(load_policy_file(local), "working-directory", local, None)
    user = user_policy_path() if user_config is None else user_config
    if user.is_file():
        return LoadedPolicy(load_policy_file(user), "user-config", user, None)
    return LoadedPolicy(load_preset(DEFAULT_PRESET), "default", None, DEFAULT_PRESET)
