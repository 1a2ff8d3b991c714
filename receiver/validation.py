"""One validator for everything read from the config file: the receiver's sections and the handlers' `Options`.

`build(Type, table, key, source)` checks a raw TOML table against a dataclass and returns an instance, or raises
`ConfigError` naming the key (`receiver.port`, `handlers.archive.timeout`) in one line that says what is wrong and
never shows the value of a secret. A field's type and default say what it accepts; `setting(...)` adds the rest:

- types: str, int, float, bool, `Duration` ("30s", "5m", "48h" or seconds; the field holds seconds), `Path` (relative
  to the config file's folder), `Literal["a", "b"]`, `list[str]`, `tuple[str, ...]`, `dict[str, str]`, a dataclass
  (a table), `tuple[SomeDataclass, ...]` (an array of tables), `dict[str, Any]` (a table passed on unchecked), and
  any of these `| None`;
- `setting(default, minimum=, maximum=, positive=, check=, secret=, ...)`: ranges, a function that checks (and may
  convert) the value, and the secret marker: a secret's value is never shown (errors, `dump`, `secrets_in` for log
  redaction), and a secret field NAME may be read from a file instead, named by `NAME_file` (Kubernetes Secrets).

Strings are expanded from the environment as they are read: `${NAME}`, `${NAME:-default}` (when NAME is unset or
empty), `${NAME:?message}` (an error when NAME is unset or empty) and `$$` (a literal `$`); any other `$` is an error.
A typed field may be given as a string that comes from the environment (`port = "${PORT}"`).

Nothing here knows the receiver: a handler package can declare its `Options` with `setting` and be checked the same
way. Only the duration parser is shared with the command line.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, cast, get_args, get_origin, get_type_hints

from receiver.durations import exact_duration, parse_duration

T = TypeVar("T")

DURATION = "duration"
Duration = Annotated[float, DURATION]
"""A field given as "30s", "5m", "48h" or plain seconds; the instance holds seconds."""

MASK = "***"
FILE_SUFFIX = "_file"
_RULES = "receiver.validation.rules"
_SHOWN_CHARACTERS = 60


class ConfigError(Exception):
    """A bad or missing config value: `key` is the dotted path, `problem` says what is wrong and what to do.

    The problem is kept to one line whatever a library's message held, so the command line can print it as one.
    """

    def __init__(self, key: str, problem: str) -> None:
        problem = " ".join(problem.split())
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


class OptionError(Exception):
    """Raised from an Options dataclass's `__post_init__`: `option` names the field (or a path below it, such as
    `headers.X-Api-Key`), `problem` says what to do. Never put a secret's value in `problem`."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem


class Invalid(ValueError):
    """A `check`'s complaint about a part of the value: `at` is added to the key (`[2]` for an item, `.name` for a
    table's entry). A plain ValueError from a check names the field itself."""

    def __init__(self, problem: str, at: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.at = at


@dataclass(frozen=True)
class Rules:
    """What `setting` adds to a field's type and default."""

    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    check: Callable[[Any], Any] | None = None
    """Called with the typed value when one was given (not with the default); returns the value to keep (it may
    convert it); raises ValueError or Invalid with the problem."""
    raw: Any = None
    """The type the file gives when the field holds something else (`check` converts it), e.g. `tuple[str, ...]`."""
    example: str = ""
    """Said when a required field is missing."""
    key: bool = True
    """False: set by the program, not read from the file."""


_PLAIN = Rules()


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    secret: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    check: Callable[[Any], Any] | None = None,
    raw: Any = None,
    example: str = "",
    key: bool = True,
) -> Any:
    """A dataclass field with validation rules: `secret` hides its value everywhere (its repr too) and allows
    `NAME_file`; `minimum`/`maximum` bound a number or duration; `positive` wants more than zero; `check` checks or
    converts a given value; `raw` is the type the file gives when `check` converts it; `example` is said when a
    required field is missing; `key=False` marks a field the program sets (left out of reprs, comparisons, `dump`
    and `secrets_in`)."""
    rules = Rules(secret, minimum, maximum, positive, check, raw, example, key)
    shown = key and not secret
    return field(default=default, default_factory=default_factory, metadata={_RULES: rules}, repr=shown, compare=key)


def rules_of(item: dataclasses.Field[Any]) -> Rules:
    rules = item.metadata.get(_RULES, _PLAIN)
    assert isinstance(rules, Rules)
    return rules


def each(convert: Callable[[Any], Any]) -> Callable[[Iterable[Any]], tuple[Any, ...]]:
    """A `check` that applies `convert` to every item of a list; a problem names the item (`key[2]`)."""

    def check(items: Iterable[Any]) -> tuple[Any, ...]:
        converted = []
        for i, item in enumerate(items):
            try:
                converted.append(convert(item))
            except Invalid as exc:
                raise Invalid(exc.problem, f"[{i}]{exc.at}") from None
            except ValueError as exc:
                raise Invalid(str(exc), f"[{i}]") from None
        return tuple(converted)

    return check


@dataclass(frozen=True)
class Source:
    """Where values come from besides the file: the environment for `${NAME}`, and the folder that relative paths
    and `*_file` keys are read from (the config file's)."""

    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    base_dir: Path = Path(".")


# --- building ---


def build(cls: type[T], raw: Any, key: str, source: Source, *, where: str = "") -> T:
    """`raw` (a TOML table, or None for an absent one) checked against the dataclass `cls`, at `key` ("" for the
    file's top level); `where` names the table in messages (default from the key: `[receiver]`, `[[pipelines]]`).
    ConfigError naming the key on the first problem."""
    where = where or _where(key)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"must be a table ({where}), got {_kind(raw, secret=False)}")
    hints = get_type_hints(cls, include_extras=True)
    fields = [item for item in dataclasses.fields(cast(Any, cls)) if item.init and rules_of(item).key]
    known = [item.name for item in fields] + [item.name + FILE_SUFFIX for item in fields if rules_of(item).secret]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        listed = ", ".join(known) or "no keys"
        raise ConfigError(_join(key, unknown[0]), f"unknown key in {where}: check the spelling; it takes {listed}")
    values: dict[str, Any] = {}
    for item in fields:
        rules, hint, item_key = rules_of(item), hints[item.name], _join(key, item.name)
        file_key = item.name + FILE_SUFFIX
        if file_key in raw and item.name in raw:
            raise ConfigError(_join(key, file_key), f"and {item.name} are both set: keep one of them")
        if file_key in raw:
            from_file = _read_secret_files(raw[file_key], hint, _join(key, file_key), source)
            values[item.name] = _checked(from_file, rules, _join(key, file_key), secret=True)
        elif item.name in raw:
            values[item.name] = _read_value(raw[item.name], hint, item_key, source, rules)
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            example = f" ({rules.example})" if rules.example else ""
            raise ConfigError(item_key, f"is required in {where}{example}")
        elif _is_dataclass_type(hint):  # an absent table: its defaults, with relative paths anchored too
            values[item.name] = build(hint, {}, item_key, source)
        elif isinstance(item.default, Path) and not item.default.is_absolute():
            values[item.name] = source.base_dir / item.default
    try:
        return cls(**values)
    except OptionError as exc:
        raise ConfigError(_join(key, exc.option), exc.problem) from None


def _read_value(value: Any, hint: Any, key: str, source: Source, rules: Rules) -> Any:
    """One value from the file as the type `hint` (or `rules.raw`), then `rules`' range and check."""
    typed = _typed(value, rules.raw if rules.raw is not None else hint, key, source, rules.secret)
    return _checked(typed, rules, key, secret=rules.secret, given=value)


def _checked(value: Any, rules: Rules, key: str, *, secret: bool, given: Any = None) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        shown = "" if secret else f", got {_show(given if isinstance(given, str) else value)}"
        if rules.positive and value <= 0:
            raise ConfigError(key, f"must be more than zero{shown}")
        if rules.minimum is not None and value < rules.minimum:
            raise ConfigError(key, f"must be at least {rules.minimum:g}{shown}")
        if rules.maximum is not None and value > rules.maximum:
            raise ConfigError(key, f"must be at most {rules.maximum:g}{shown}")
    if rules.check is None:
        return value
    try:
        return rules.check(value)
    except Invalid as exc:
        raise ConfigError(key + exc.at, exc.problem) from None
    except (ValueError, OptionError) as exc:
        raise ConfigError(key, exc.problem if isinstance(exc, OptionError) else str(exc)) from None


def _typed(value: Any, hint: Any, key: str, source: Source, secret: bool) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        if len(present) == 1:
            return _typed(value, present[0], key, source, secret)
    elif origin is Annotated:
        if DURATION in args[1:]:
            return _duration(value, key, source, secret)
        return _typed(value, args[0], key, source, secret)
    elif _is_dataclass_type(hint):
        return build(hint, value, key, source)
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis and _is_dataclass_type(args[0]):
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise ConfigError(key, f"must be an array of tables ([[{key}]]), got {_kind(value, secret=False)}")
        return tuple(build(args[0], item, f"{key}[{i}]", source) for i, item in enumerate(value))
    elif (origin is list and len(args) == 1) or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        if not isinstance(value, list):
            raise ConfigError(key, f"must be a list, got {_kind(value, secret)}")
        items = [_typed(item, args[0], f"{key}[{i}]", source, secret) for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    elif origin in (dict, Mapping) and len(args) == 2 and args[0] is str:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a table, got {_kind(value, secret)}")
        if args[1] is Any:
            return dict(value)
        return {name: _typed(item, args[1], f"{key}.{name}", source, secret) for name, item in value.items()}
    elif origin is Literal:
        choices = ", ".join(repr(arg) for arg in args)
        if not isinstance(value, str):
            raise ConfigError(key, f"must be one of {choices}; got {_kind(value, secret)}")
        text = _string(value, key, source, secret)
        if text not in args:
            raise ConfigError(key, f"must be one of {choices}" + ("" if secret else f"; got {_show(text)}"))
        return text
    elif hint is str:
        return _string(value, key, source, secret)
    elif hint is Path:
        return _path(value, key, source, secret)
    elif hint in (bool, int, float):
        return _scalar(value, hint, key, source, secret)
    raise ConfigError(key, f"is declared with a type the config file cannot give ({hint})")


_NAMES = {bool: "true or false", int: "a whole number", float: "a number"}


def _scalar(value: Any, hint: type, key: str, source: Source, secret: bool) -> Any:
    if isinstance(value, bool):
        if hint is bool:
            return value
    elif hint is int and isinstance(value, int):
        return value
    elif hint is float and isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text, from_environment = expand(value, key, source.environ, secret=secret)
        if from_environment:
            parsed = _parse_scalar(text.strip(), hint)
            if parsed is None:
                gave = "" if secret else f" {_show(text)}"
                raise ConfigError(key, f"must be {_NAMES[hint]}; the environment gave{gave or ' something else'}")
            return parsed
        if not secret and _parse_scalar(value.strip(), hint) is not None:
            raise ConfigError(key, f"must be {_NAMES[hint]}, got the string {_show(value)}: write it without quotes")
    raise ConfigError(key, f"must be {_NAMES[hint]}, got {_kind(value, secret)}")


def _parse_scalar(text: str, hint: type) -> Any:
    if hint is bool:
        return {"true": True, "false": False}.get(text.lower())
    if hint is int:
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _string(value: Any, key: str, source: Source, secret: bool) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, got {_kind(value, secret)}")
    return expand(value, key, source.environ, secret=secret)[0]


def _path(value: Any, key: str, source: Source, secret: bool) -> Path:
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a path, got {_kind(value, secret)}")
    text = _string(value, key, source, secret)
    if not text:
        raise ConfigError(key, "must name a file or folder, got an empty string")
    path = Path(text).expanduser()
    return path if path.is_absolute() else source.base_dir / path


def _duration(value: Any, key: str, source: Source, secret: bool) -> float:
    if isinstance(value, str):
        value = expand(value, key, source.environ, secret=secret)[0]
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(key, 'must be a duration such as "30s", "5m" or "48h"' if secret else str(exc)) from None


# --- secrets read from files ---


def _read_secret_files(value: Any, hint: Any, key: str, source: Source) -> Any:
    """A secret field's value from the file(s) `NAME_file` names: text without one trailing newline; a list field
    takes one item per non-empty line; a table field names a file for each entry."""
    bare = _bare(hint)
    origin = get_origin(bare)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f'must be a table of file names (name = "/run/secrets/x"), got {_kind(value)}')
        return {name: read_secret_file(_path(path, f"{key}.{name}", source, False), f"{key}.{name}")
                for name, path in value.items()}  # fmt: skip
    text = read_secret_file(_path(value, key, source, False), key)
    if origin in (list, tuple):
        lines = [line.rstrip("\r") for line in text.splitlines() if line.strip()]
        return tuple(lines) if origin is tuple else lines
    return text


def read_secret_file(path: Path, key: str) -> str:
    """The text of a file holding a secret, without one trailing newline (as `kubectl create secret` and editors
    leave it); ConfigError naming `key` if it cannot be read."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(key, f"file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ConfigError(key, f"{path} is not UTF-8 text") from None
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            return text[: -len(ending)]
    return text


# --- the environment ---

# `$$`, `${NAME}`, `${NAME:-default}`, `${NAME:?message}`; the empty last alternative catches every other `$`.
_REFERENCE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::([-?])([^}]*))?\}|)")
_NAME_AFTER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMS = "${NAME}, ${NAME:-default} or ${NAME:?message}, and $$ for a literal $"


def expand(text: str, key: str, environ: Mapping[str, str], *, secret: bool = False) -> tuple[str, bool]:
    """`text` with its environment references replaced, and whether it held any (`$$` is not one). ConfigError
    naming `key` for an unset variable or a `$` that starts none of the forms; a secret's text is never shown."""
    if "$" not in text:
        return text, False
    parts: list[str] = []
    last = 0
    referenced = False
    for match in _REFERENCE.finditer(text):
        parts.append(text[last : match.start()])
        last = match.end()
        dollar, name, operator, word = match.groups()
        if dollar:
            parts.append("$")
            continue
        if name is None:
            raise ConfigError(key, _stray_dollar(text[match.start() + 1 :], secret))
        referenced = True
        value = environ.get(name)
        if operator is None and value is None:
            raise ConfigError(key, f"environment variable {name} is not set (referenced as ${{{name}}})")
        if operator == "-" and not value:
            value = word
        elif operator == "?" and not value:
            said = f": {word}" if word else ""
            raise ConfigError(key, f"environment variable {name} is not set or empty{said}")
        parts.append(value or "")
    parts.append(text[last:])
    return "".join(parts), referenced


def _stray_dollar(after: str, secret: bool) -> str:
    """What is wrong with a `$` that starts no reference; `after` is the text after it."""
    name = _NAME_AFTER.match(after)
    if name and secret:
        problem = "a shell-style $NAME is not expanded here: write ${NAME}"
    elif name:
        problem = f"${name.group()} is not expanded here: write ${{{name.group()}}}"
    elif after.startswith("{") and "}" not in after:
        problem = 'has "${" without its closing "}"'
    elif after.startswith("{") and not secret:
        problem = f'"${{{after[1 : after.index("}")]}}}" is not an environment reference'
    elif after.startswith("{"):
        problem = 'has a "${...}" that is not an environment reference'
    else:
        problem = 'has a "$" that starts no environment reference'
    return f"{problem} (the forms are {_FORMS})"


# --- showing ---


def dump(instance: Any) -> dict[str, Any]:
    """An instance's fields as the config file would say them (durations as "90s", paths as text, tuples as lists,
    None where unset), every secret's value as `***` (an empty one stays empty: it hides nothing)."""
    hints = get_type_hints(type(instance), include_extras=True)
    shown: dict[str, Any] = {}
    for item in dataclasses.fields(instance):
        rules = rules_of(item)
        if rules.key:
            shown[item.name] = _dump_value(getattr(instance, item.name), hints[item.name], rules.secret)
    return shown


def _dump_value(value: Any, hint: Any, secret: bool) -> Any:
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dump(value)
    if secret:
        return _masked(value)
    bare = _bare(hint)
    if get_origin(bare) is Annotated and DURATION in get_args(bare)[1:]:
        return exact_duration(value)
    if isinstance(value, Mapping):
        return {name: _dump_value(item, Any, False) for name, item in value.items()}
    if isinstance(value, list | tuple):
        item_hint = get_args(bare)[0] if get_args(bare) else Any
        return [_dump_value(item, item_hint, False) for item in value]
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _masked(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {name: _masked(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return MASK if value else value


def secrets_in(instance: Any) -> list[str]:
    """Every non-empty secret value in an instance and the dataclasses it holds: what log lines must not show."""
    found: list[str] = []
    if not dataclasses.is_dataclass(instance) or isinstance(instance, type):
        return found
    for item in dataclasses.fields(instance):
        rules = rules_of(item)
        if not rules.key:
            continue
        value = getattr(instance, item.name)
        if rules.secret:
            found.extend(_strings(value))
        elif dataclasses.is_dataclass(value):
            found.extend(secrets_in(value))
        elif isinstance(value, tuple):
            for entry in value:
                found.extend(secrets_in(entry))
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    return []


# --- small helpers ---


def _is_dataclass_type(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _bare(hint: Any) -> Any:
    """`hint` without `| None`."""
    if get_origin(hint) in (Union, types.UnionType):
        present = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(present) == 1:
            return present[0]
    return hint


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _where(key: str) -> str:
    """How messages name the table at `key`: `[receiver]`, `[[pipelines]]`, `[handlers.x]`."""
    if not key:
        return "the config file"
    if key.endswith("]"):
        return f"[[{key[: key.rindex('[')]}]]"
    return f"[{key}]"


def _kind(value: Any, secret: bool = False) -> str:
    """What a value is, for "got ...": its kind, and the value itself unless it is a secret."""
    kinds = ((bool, "a boolean"), (int, "a whole number"), (float, "a number"), (str, "a string"), (list, "a list"))
    kind = next((name for cls, name in kinds if isinstance(value, cls)), None)
    if isinstance(value, Mapping):
        return "a table"
    if kind is None:
        return f"a {type(value).__name__}"
    if secret or isinstance(value, list):
        return kind
    return f"{kind} {_show(value)}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARACTERS else text[: _SHOWN_CHARACTERS - 4] + "…" + text[-3:]
