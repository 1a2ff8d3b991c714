"""Pipelines from the config: which handlers run, in which order, for which event types, with which options.

`[[pipelines]]` entries are tried in order; the first whose `types` (globs, e.g. `no.altinn.correspondence.*`)
match the event's type is its pipeline. With no `[[pipelines]]`, the defaults of `[altinn] role` apply. A handler
name resolves to a built-in, then an entry point in the group `altinn_receiver.handlers`, then a dotted path
`package.module:Name`; `[handlers.NAME] use = "..."` makes NAME an instance of another handler with its own options.
Everything is resolved and checked here, at startup: a problem is a `ConfigError` naming the key (exit status 2).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from importlib.metadata import entry_points
from typing import Any

from handlers.api import BaseHandler, Context, Event, Handler
from receiver.altinn.clients import require_altinn
from receiver.config import Config, ConfigError, HandlerSection, PipelineConfig
from receiver.validation import Source, build, secrets_in

ENTRY_POINT_GROUP = "altinn_receiver.handlers"
CORRESPONDENCE_TYPES = "no.altinn.correspondence.correspondence*"

BUILTINS: dict[str, str] = {
    "fetch_correspondence": "handlers.fetch_correspondence:FetchCorrespondence",
    "download_attachments": "handlers.download_attachments:DownloadAttachments",
    "store": "handlers.store:Store",
    "forward_http": "handlers.forward_http:ForwardHttp",
    "forward_amqp": "handlers.forward_amqp:ForwardAmqp",
    "forward_nats": "handlers.forward_nats:ForwardNats",
    "mark_as_read": "handlers.mark_as_read:MarkAsRead",
    "confirm": "handlers.confirm:Confirm",
    "log": "handlers.log:Log",
}

OPTIONAL: dict[str, tuple[str, str]] = {
    "forward_amqp": ("amqp", "aio_pika"),
    "forward_nats": ("nats", "nats"),
}
"""The built-ins whose client is an optional extra of the package: (the extra, the module it installs)."""

DEFAULT_PIPELINES: dict[str, tuple[PipelineConfig, ...]] = {
    "service-owner": (
        PipelineConfig((CORRESPONDENCE_TYPES,), ("fetch_correspondence", "store")),
        PipelineConfig(("no.altinn.correspondence.attachment*", "no.altinn.correspondence.notification*"), ("store",)),
    ),
    "recipient": (
        PipelineConfig(
            ("no.altinn.correspondence.correspondencepublished",),
            ("fetch_correspondence", "download_attachments", "store"),
        ),
        PipelineConfig(
            (
                "no.altinn.correspondence.correspondencereceiverneverread",
                "no.altinn.correspondence.correspondencereceiverneverconfirmed",
            ),
            ("fetch_correspondence", "store"),
        ),
    ),
}


@dataclass(frozen=True)
class Step:
    """One configured handler: `name` as the config spells it, the handler object, its validated options, and how
    long it may run on one event (`timeout`, seconds: its `step_timeout`, else `[dispatch] step_timeout`)."""

    name: str
    handler: Handler
    options: Any
    timeout: float


@dataclass(frozen=True)
class Pipeline:
    types: tuple[str, ...]
    steps: tuple[Step, ...]

    def matches(self, event_type: str) -> bool:
        return self.pattern(event_type) is not None

    def pattern(self, event_type: str) -> str | None:
        """The first of `types` that `event_type` matches (a label of few values, unlike the type itself)."""
        return next((pattern for pattern in self.types if fnmatchcase(event_type, pattern)), None)

    def describe(self) -> str:
        return " → ".join(step.name for step in self.steps)


@dataclass(frozen=True)
class Pipelines:
    pipelines: tuple[Pipeline, ...]
    steps: Mapping[str, Step]
    uses_altinn: bool
    warning: str = ""

    def for_type(self, event_type: str) -> Pipeline | None:
        """The first pipeline whose types match; None means the event is skipped."""
        return next((p for p in self.pipelines if p.matches(event_type)), None)

    def secrets(self) -> list[str]:
        """The values of the options marked secret (header values, URLs that may hold credentials)."""
        return [secret for step in self.steps.values() for secret in secrets_in(step.options)]


def pipeline_configs(config: Config) -> tuple[tuple[PipelineConfig, ...], str, str]:
    """The configured pipelines, or the role's defaults; the key to name in errors about their handlers; and a
    warning when the defaults cannot call Altinn (not configured): they then only store the events."""
    if config.pipelines:
        return config.pipelines, "pipelines", ""
    where = f"the default pipelines of [altinn] role = {config.altinn.role!r}"
    defaults = DEFAULT_PIPELINES[config.altinn.role]
    try:
        require_altinn(config)
    except ConfigError as missing:
        stored = tuple(PipelineConfig(p.types, ("store",)) for p in defaults)
        warning = f"events are stored but not fetched: {missing}"
        return stored, f"{where} (store only, Altinn is not configured)", warning
    return defaults, where, ""


def load_pipelines(config: Config) -> Pipelines:
    """Resolve every handler and check every option; ConfigError naming the key on the first problem."""
    configs, where, warning = pipeline_configs(config)
    steps: dict[str, Step] = {}
    pipelines = []
    for i, pipeline in enumerate(configs):
        for j, name in enumerate(pipeline.handlers):
            if name not in steps:
                key = f"pipelines[{i}].handlers[{j}]" if config.pipelines else where
                section = config.handlers.get(name)
                steps[name] = build_step(name, section, key, config.read_with, config.dispatch.step_timeout)
        pipelines.append(Pipeline(pipeline.types, tuple(steps[name] for name in pipeline.handlers)))
    for name in config.handlers:
        if name not in steps:
            used = f"; {where} use {', '.join(steps)}" if not config.pipelines else ""
            raise ConfigError(
                f"handlers.{name}", f"is not used by any pipeline: add {name!r} to a [[pipelines]] handlers list{used}"
            )
    uses_altinn = any(step.handler.uses_altinn for step in steps.values())
    if uses_altinn:
        require_altinn(config)
    return Pipelines(tuple(pipelines), steps, uses_altinn, warning)


def build_step(name: str, section: HandlerSection | None, key: str, source: Source, default_timeout: float) -> Step:
    target = section.use if section is not None else name
    target_key = f"handlers.{name}.use" if section is not None and section.use != name else key
    handler = create_handler(resolve_handler(target, target_key), target, target_key)
    raw = dict(section.options) if section is not None else {}
    options = handler_options(handler, raw, f"handlers.{name}", target, source)
    timeout = section.step_timeout if section is not None and section.step_timeout is not None else default_timeout
    return Step(name, handler, options, timeout)


def create_handler(factory: Callable[[], Any], target: str, key: str) -> Handler:
    """A handler made by `factory` (its class, mostly) and checked against what `Handler` declares."""
    try:
        made = factory()
    except Exception as exc:
        raise ConfigError(key, f"handler {target!r} could not be created: {type(exc).__name__}: {exc}") from None
    if not isinstance(getattr(made, "name", None), str) or not inspect.iscoroutinefunction(
        getattr(made, "handle", None)
    ):
        raise ConfigError(
            key, f"{target!r} is not a handler: it needs a `name` and `async def handle(self, event, ctx)`"
        )
    handler: Handler = made if isinstance(made, Handler) else PartialHandler(made)
    if handler.Options is not None and not (
        isinstance(handler.Options, type) and dataclasses.is_dataclass(handler.Options)
    ):
        raise ConfigError(key, f"handler {target!r}: its `Options` must be a dataclass (or None: no options)")
    if not isinstance(handler.uses_altinn, bool):
        raise ConfigError(key, f"handler {target!r}: `uses_altinn` must be True or False")
    for method in ("start", "aclose"):
        declared = getattr(made, method, None)
        if declared is not None and not inspect.iscoroutinefunction(declared):
            raise ConfigError(key, f"handler {target!r}: `{method}` must be `async def {method}(...)`")
    return handler


class PartialHandler:
    """A handler written against the older, smaller contract (`name` and `handle`, perhaps `Options`,
    `uses_altinn` or `aclose`): what it has, and `BaseHandler`'s defaults for what it lacks."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.Options: type[Any] | None = getattr(inner, "Options", BaseHandler.Options)
        self.uses_altinn: bool = getattr(inner, "uses_altinn", BaseHandler.uses_altinn)

    async def start(self, ctx: Context[Any]) -> None:
        start = getattr(self.inner, "start", None)
        if start is not None:
            await start(ctx)

    async def handle(self, event: Event, ctx: Context[Any]) -> None:
        await self.inner.handle(event, ctx)

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()


def handler_options(handler: Handler, raw: Mapping[str, Any], key: str, target: str, source: Source) -> Any:
    """The handler's `Options` instance from the keys of its `[handlers.NAME]` section (`key`) other than the
    receiver's own (`use`, `step_timeout`), read with `receiver.validation` and `source` (the environment and folder
    the config was read with); None for a handler without options. The one place options are validated: for the
    dispatcher and for `handlers.testing` alike."""
    if handler.Options is None:
        if raw:
            raise ConfigError(f"{key}.{sorted(raw)[0]}", f"handler {target!r} takes no options")
        return None
    return build(handler.Options, raw, key, source, where=f"the options of handler {target!r}")


def resolve_handler(target: str, key: str) -> Callable[[], Any]:
    """A built-in, an entry point of `altinn_receiver.handlers`, or `package.module:Name`; ConfigError otherwise."""
    if target in BUILTINS:
        if target in OPTIONAL and (missing := missing_extra(target)):
            raise ConfigError(key, missing)
        return _import(BUILTINS[target], key)
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == target]
    if found:
        try:
            loaded: Callable[[], Any] = found[0].load()
        except Exception as exc:
            raise ConfigError(
                key, f"entry point {target!r} ({found[0].value}) cannot be loaded: {type(exc).__name__}: {exc}"
            ) from None
        return loaded
    if ":" in target:
        return _import(target, key)
    raise ConfigError(
        key,
        f"unknown handler {target!r}: not a built-in ({', '.join(BUILTINS)}), not installed as an entry point in "
        f"group {ENTRY_POINT_GROUP}, and not a dotted path package.module:Name",
    )


def missing_extra(builtin: str) -> str:
    """Why an optional built-in cannot run here (its extra is not installed), or "" when it can."""
    extra, module = OPTIONAL[builtin]
    if importlib.util.find_spec(module) is not None:
        return ""
    return (
        f"handler {builtin!r} needs the optional extra {extra!r}, which is not installed: "
        f"pip install 'altinn-receiver[{extra}]'"
    )


def _import(path: str, key: str) -> Callable[[], Any]:
    module_name, _, attribute = path.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(key, f"cannot import {module_name!r} for handler {path!r}: {exc}") from None
    for part in attribute.split("."):
        value = getattr(value, part, None)
        if value is None:
            raise ConfigError(key, f"module {module_name!r} has no {attribute!r} (handler {path!r})")
    if not callable(value):
        raise ConfigError(key, f"{path!r} is not a class or factory of handlers")
    return value
