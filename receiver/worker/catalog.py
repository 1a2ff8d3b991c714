"""The handlers a receiver can run, for `altinn-receiver handlers list`: the built-ins, every entry point of the
group `altinn_receiver.handlers` (with its distribution), and the dotted paths a config names; each with its
options as its `Options` dataclass declares them (type, default, required), loaded as `serve` would load it.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from handlers.api import Duration
from receiver.config import Config, ConfigError
from receiver.worker.pipelines import (
    BUILTINS,
    ENTRY_POINT_GROUP,
    OPTIONAL,
    create_handler,
    missing_extra,
    pipeline_configs,
    resolve_handler,
)
from receiver.worker.steps import duration_text

Kind = Literal["builtin", "entry point", "path"]


@dataclass(frozen=True)
class OptionInfo:
    """One field of a handler's `Options`: its name, its type as the config sees it, and its default (None and
    `required` when it has none)."""

    name: str
    type: str
    default: Any = None
    required: bool = False

    def describe(self) -> str:
        """`name: type = default`, or `name: type (required)`, as the listing shows it."""
        if self.required:
            return f"{self.name}: {self.type} (required)"
        return f"{self.name}: {self.type} = {toml_value(self.default)}"


@dataclass(frozen=True)
class HandlerInfo:
    """A handler the receiver can run: its `name` in a config, where it comes from (`kind`; `source` says it for
    people: `builtin`, the entry point's distribution and version, or the dotted path), its `target`
    (`module:attribute`), and, once loaded, whether it calls Altinn and its options; `error` when it cannot be
    loaded or is not the one a config would get."""

    name: str
    kind: Kind
    source: str
    target: str
    uses_altinn: bool | None = None
    options: tuple[OptionInfo, ...] = ()
    error: str = ""
    distribution: dict[str, str] | None = None
    """An entry point's distribution: {"name": ..., "version": ...}."""
    extra: str = ""
    """The optional extra of the package a built-in needs, when it is not installed (`error` says how to install
    it): the installation lacks it by choice, nothing is broken."""

    @property
    def loaded(self) -> bool:
        return self.uses_altinn is not None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["options"] = [dataclasses.asdict(option) for option in self.options]
        return data


def catalog(config: Config | None = None) -> list[HandlerInfo]:
    """Every built-in, every installed entry point, and the dotted paths `config` names, in that order."""
    found = [_builtin(name, target) for name, target in BUILTINS.items()]
    taken = set(BUILTINS)
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        found.append(_from_entry_point(entry_point, taken))
        taken.add(entry_point.name)
    for path in _dotted_paths(config):
        found.append(_loaded(path, "path", path, path, _resolver(path)))
    return found


def _builtin(name: str, target: str) -> HandlerInfo:
    if name in OPTIONAL and (missing := missing_extra(name)):
        return HandlerInfo(name, "builtin", "builtin", target, error=missing, extra=OPTIONAL[name][0])
    return _loaded(name, "builtin", "builtin", target, _resolver(name))


def _resolver(target: str) -> Callable[[], Callable[[], Any]]:
    return lambda: resolve_handler(target, target)


def _from_entry_point(entry_point: EntryPoint, taken: set[str]) -> HandlerInfo:
    dist = entry_point.dist
    distribution = {"name": dist.name, "version": dist.version} if dist is not None else None
    source = f"{dist.name} {dist.version}" if dist is not None else "entry point"
    info = _loaded(entry_point.name, "entry point", source, entry_point.value, lambda: entry_point.load())
    info = dataclasses.replace(info, distribution=distribution)
    if entry_point.name in taken:
        shadow = "a built-in" if entry_point.name in BUILTINS else "another entry point"
        info = dataclasses.replace(info, error=f"not used: {shadow} has the name {entry_point.name!r}")
    return info


def _dotted_paths(config: Config | None) -> Iterator[str]:
    """The `package.module:Name` handlers the config's pipelines and `use =` keys name, each once."""
    if config is None:
        return
    configs, _, _ = pipeline_configs(config)
    named = [name for pipeline in configs for name in pipeline.handlers]
    targets = [config.handlers[name].use if name in config.handlers else name for name in named]
    seen: set[str] = set()
    for target in targets:
        if ":" in target and target not in BUILTINS and target not in seen:
            seen.add(target)
            yield target


def _loaded(name: str, kind: Kind, source: str, target: str, resolve: Callable[[], Callable[[], Any]]) -> HandlerInfo:
    """The handler loaded and made as `serve` does it; the problem in `error` when that fails."""
    info = HandlerInfo(name, kind, source, target)
    try:
        handler = create_handler(resolve(), name, name)
    except ConfigError as exc:
        return dataclasses.replace(info, error=exc.problem)
    except Exception as exc:  # an entry point whose module fails to import
        return dataclasses.replace(info, error=f"cannot be loaded: {type(exc).__name__}: {exc}")
    name = handler.name if kind == "path" else name
    return dataclasses.replace(info, name=name, uses_altinn=handler.uses_altinn, options=options_of(handler.Options))


def options_of(options_type: type[Any] | None) -> tuple[OptionInfo, ...]:
    """The fields of an `Options` dataclass as the config takes them."""
    if options_type is None:
        return ()
    hints = get_type_hints(options_type, include_extras=True)
    described = []
    for option in dataclasses.fields(options_type):
        if not option.init:
            continue
        hint = hints[option.name]
        if option.default is not dataclasses.MISSING:
            described.append(OptionInfo(option.name, type_name(hint), config_value(option.default, hint)))
        elif option.default_factory is not dataclasses.MISSING:
            described.append(OptionInfo(option.name, type_name(hint), config_value(option.default_factory(), hint)))
        else:
            described.append(OptionInfo(option.name, type_name(hint), required=True))
    return tuple(described)


def type_name(hint: Any) -> str:
    """An option's type as a config author reads it: `duration`, `path`, `"a" | "b"`, `list[str]`, `int | None`."""
    if hint == Duration:
        return "duration"
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " | ".join("None" if arg is type(None) else type_name(arg) for arg in args)
    if origin is Literal:
        return " | ".join(toml_value(arg) for arg in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(arg) for arg in args if arg is not Ellipsis)}]"
    if hint is Path:
        return "path"
    return getattr(hint, "__name__", str(hint))


def config_value(value: Any, hint: Any) -> Any:
    """A default as the config would write it: a duration as "30s", a path as text; JSON-able."""
    if hint == Duration and isinstance(value, int | float):
        return duration_text(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def toml_value(value: Any) -> str:
    """A value as TOML spells it (`true`, `"text"`, `[...]`, `{ ... }`); `unset` for None, which TOML cannot say."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }" if value else "{}"
    return str(value)
