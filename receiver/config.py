"""The receiver's configuration: a TOML file, with ${VAR} expanded from the environment, read into frozen dataclasses.

Every problem raises ConfigError naming the key (`receiver.port`) and what is wrong; the command line turns it into
one line on stderr and exit status 2.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from receiver.durations import parse_duration
from receiver.scopes import NEEDED, MissingScope, scope_sets

CONFIG_ENV = "ALTINN_RECEIVER_CONFIG"
DEFAULT_CONFIG_FILE = "receiver.toml"

T = TypeVar("T")


class ConfigError(Exception):
    """A bad or missing config value: `key` is the dotted path, `problem` says what is wrong and what to do."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


# --- Altinn environments (events contract §6, correspondence contract §3.1) ---

PLATFORM_URLS = {
    "tt02": "https://platform.tt02.altinn.no",
    "production": "https://platform.altinn.no",
    "at22": "https://platform.at22.altinn.cloud",
    "at23": "https://platform.at23.altinn.cloud",
    "yt01": "https://platform.yt01.altinn.cloud",
}
MASKINPORTEN_ISSUERS = {
    "tt02": "https://test.maskinporten.no/",
    "production": "https://maskinporten.no/",
}
ROLES = tuple(NEEDED)  # "service-owner", "recipient": the roles receiver.scopes knows the needs of
URN_PATTERN = re.compile(r"^urn:[a-z0-9-]{1,30}(:[a-z0-9()+,.\-;$_!/]{1,100}){1,10}$")


@dataclass(frozen=True)
class ReceiverConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    path: str = "/events"
    secret: str = ""
    previous_secrets: tuple[str, ...] = ()
    allow_no_secret: bool = False
    max_body_bytes: int = 65536
    trusted_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    forwarded_allow_ips: tuple[str, ...] = ()
    shutdown_timeout: float = 20.0
    public_url: str = ""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every code that is accepted: the current one first."""
        return tuple(s for s in (self.secret, *self.previous_secrets) if s)


@dataclass(frozen=True)
class StoreConfig:
    path: Path = Path("receiver.db")


@dataclass(frozen=True)
class AltinnConfig:
    environment: str = ""
    platform_url: str = ""
    subscription_key: str = ""
    role: str = "service-owner"


@dataclass(frozen=True)
class MaskinportenConfig:
    issuer: str = ""
    client_id: str = ""
    kid: str = ""
    private_key_file: Path | None = None
    certificate_file: Path | None = None
    certificate_password: str = ""
    scopes: tuple[str, ...] = ()
    system_user_org: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.client_id)


@dataclass(frozen=True)
class DispatchConfig:
    concurrency: int = 8
    max_attempts: int = 12
    max_age: float = 48 * 3600.0
    backoff_base: float = 1.0
    backoff_cap: float = 600.0
    lease: float = 300.0
    poll_interval: float = 1.0
    step_timeout: float = 300.0
    """How long one handler may run on one event before it is cancelled (`[handlers.NAME] step_timeout` wins)."""


@dataclass(frozen=True)
class PipelineConfig:
    types: tuple[str, ...]
    handlers: tuple[str, ...]


@dataclass(frozen=True)
class HandlerSection:
    """A `[handlers.NAME]` section: `use` names the handler it instantiates (default: NAME itself), `step_timeout`
    overrides `[dispatch] step_timeout`; `options` are the other keys, for the handler's `Options`."""

    name: str
    use: str
    options: Mapping[str, Any]
    step_timeout: float | None = None


@dataclass(frozen=True)
class SubscriptionConfig:
    resource: str
    subject: str = ""
    type: str = ""


@dataclass(frozen=True)
class CatchupConfig:
    interval: float = 300.0
    start: str = "now"
    enabled: bool = True


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"


@dataclass(frozen=True)
class Config:
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    altinn: AltinnConfig = field(default_factory=AltinnConfig)
    maskinporten: MaskinportenConfig = field(default_factory=MaskinportenConfig)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    pipelines: tuple[PipelineConfig, ...] = ()
    handlers: Mapping[str, HandlerSection] = field(default_factory=dict)
    subscriptions: tuple[SubscriptionConfig, ...] = ()
    catchup: CatchupConfig = field(default_factory=CatchupConfig)
    log: LogConfig = field(default_factory=LogConfig)
    source: Path | None = None


# --- reading ---


def resolve_config_path(path: str | os.PathLike[str] | None) -> Path:
    """The file to read: the given path, else $ALTINN_RECEIVER_CONFIG, else ./receiver.toml."""
    chosen = path or os.environ.get(CONFIG_ENV) or None
    if chosen is None:
        if Path(DEFAULT_CONFIG_FILE).is_file():
            return Path(DEFAULT_CONFIG_FILE)
        raise ConfigError(
            "",
            f"no config file: pass --config PATH, set {CONFIG_ENV}, or create ./{DEFAULT_CONFIG_FILE}",
        )
    return Path(chosen)


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate the config file."""
    file = resolve_config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"config file {file} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {file}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{file} is not valid TOML: {exc}") from None
    config = parse_config(data, environ if environ is not None else os.environ, base_dir=file.parent)
    return replace(config, source=file)


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str, key: str, environ: Mapping[str, str]) -> str:
    """Replace ${VAR} with the environment's value; `$$` is a literal `$`. An unset VAR is an error."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in environ:
            raise ConfigError(key, f"environment variable {name} is not set (referenced as ${{{name}}})")
        return environ[name]

    return _VAR.sub(substitute, value)


def _expand_tree(value: Any, key: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return expand_env(value, key, environ)
    if isinstance(value, list):
        return [_expand_tree(v, f"{key}[{i}]", environ) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand_tree(v, f"{key}.{k}" if key else k, environ) for k, v in value.items()}
    return value


class Section:
    """Typed reads from one TOML table; `done()` rejects keys nobody read (typos)."""

    def __init__(self, data: Any, key: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(key, f"must be a table, got {type(data).__name__}")
        self.data: dict[str, Any] = dict(data)
        self.key = key

    def name(self, item: str) -> str:
        return f"{self.key}.{item}" if self.key else item

    def _take(self, item: str, kind: type | tuple[type, ...], kind_name: str, default: T) -> Any:
        if item not in self.data:
            return default
        value = self.data.pop(item)
        if isinstance(value, bool) and kind is not bool:
            raise ConfigError(self.name(item), f"must be {kind_name}, got a boolean")
        if not isinstance(value, kind):
            raise ConfigError(self.name(item), f"must be {kind_name}, got {type(value).__name__} {value!r}")
        return value

    def string(self, item: str, default: str = "") -> str:
        return str(self._take(item, str, "a string", default))

    def boolean(self, item: str, default: bool = False) -> bool:
        return bool(self._take(item, bool, "true or false", default))

    def integer(self, item: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = int(self._take(item, int, "a whole number", default))
        if minimum is not None and value < minimum:
            raise ConfigError(self.name(item), f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(self.name(item), f"must be at most {maximum}, got {value}")
        return value

    def duration(self, item: str, default: float, *, positive: bool = True) -> float:
        if item not in self.data:
            return default
        raw = self.data.pop(item)
        try:
            seconds = parse_duration(raw)
        except ValueError as exc:
            raise ConfigError(self.name(item), str(exc)) from None
        if positive and seconds <= 0:
            raise ConfigError(self.name(item), f"must be longer than zero, got {raw!r}")
        return seconds

    def strings(self, item: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._take(item, list, "a list of strings", None)
        if value is None:
            return default
        for i, entry in enumerate(value):
            if not isinstance(entry, str):
                raise ConfigError(f"{self.name(item)}[{i}]", f"must be a string, got {entry!r}")
        return tuple(value)

    def choice(self, item: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(item, default)
        if value not in choices:
            raise ConfigError(self.name(item), f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def table(self, item: str) -> Any:
        return self._take(item, dict, "a table", {})

    def tables(self, item: str) -> list[Any]:
        value = self._take(item, list, "an array of tables ([[...]])", [])
        for i, entry in enumerate(value):
            if not isinstance(entry, dict):
                raise ConfigError(f"{self.name(item)}[{i}]", "must be a table")
        return list(value)

    def done(self) -> None:
        if self.data:
            unknown = sorted(self.data)[0]
            raise ConfigError(self.name(unknown), "unknown key (check the spelling; see docs/configuration.md)")


def check_url(key: str, value: str, *, schemes: tuple[str, ...] = ("https", "http")) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(key, f"must be an absolute {' or '.join(schemes)} URL, got {value!r}")
    return value


def _parse_receiver(sec: Section) -> ReceiverConfig:
    path = sec.string("path", "/events")
    if not path.startswith("/"):
        raise ConfigError(sec.name("path"), f"must start with '/', got {path!r}")
    allow_no_secret = sec.boolean("allow_no_secret", False)
    secret = sec.string("secret", "")
    if not secret and not allow_no_secret:
        raise ConfigError(
            sec.name("secret"),
            'is required: set it (e.g. secret = "${ALTINN_RECEIVER_SECRET}") or set allow_no_secret = true',
        )
    previous = sec.strings("previous_secrets")
    for i, old in enumerate(previous):
        if not old:
            raise ConfigError(f"{sec.name('previous_secrets')}[{i}]", "must not be empty")
    networks = []
    for i, cidr in enumerate(sec.strings("trusted_networks")):
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ConfigError(
                f"{sec.name('trusted_networks')}[{i}]", f"must be an IP network in CIDR form, got {cidr!r}"
            ) from None
    proxies = sec.strings("forwarded_allow_ips")
    for i, proxy in enumerate(proxies):
        if proxy == "*":
            continue
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                f"{sec.name('forwarded_allow_ips')}[{i}]", f'must be an IP address, CIDR or "*", got {proxy!r}'
            ) from None
    public_url = sec.string("public_url", "")
    if public_url:
        check_url(sec.name("public_url"), public_url)
        if urlsplit(public_url).query:
            raise ConfigError(sec.name("public_url"), "must not have a query string: the code is appended as ?code=")
    return ReceiverConfig(
        host=sec.string("host", "127.0.0.1"),
        port=sec.integer("port", 8080, minimum=0, maximum=65535),
        path=path,
        secret=secret,
        previous_secrets=previous,
        allow_no_secret=allow_no_secret,
        max_body_bytes=sec.integer("max_body_bytes", 65536, minimum=256),
        trusted_networks=tuple(networks),
        forwarded_allow_ips=proxies,
        shutdown_timeout=sec.duration("shutdown_timeout", 20.0, positive=False),
        public_url=public_url,
    )


def _optional_path(sec: Section, item: str, base_dir: Path) -> Path | None:
    value = sec.string(item, "")
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def _parse_altinn(sec: Section) -> AltinnConfig:
    environment = sec.string("environment", "")
    if environment and environment not in PLATFORM_URLS:
        raise ConfigError(sec.name("environment"), f"must be one of {', '.join(PLATFORM_URLS)}; got {environment!r}")
    platform_url = sec.string("platform_url", "") or PLATFORM_URLS.get(environment, "")
    if platform_url:
        check_url(sec.name("platform_url"), platform_url)
    return AltinnConfig(
        environment=environment,
        platform_url=platform_url.rstrip("/"),
        subscription_key=sec.string("subscription_key", ""),
        role=sec.choice("role", ROLES, "service-owner"),
    )


def _parse_maskinporten(sec: Section, altinn: AltinnConfig, base_dir: Path) -> MaskinportenConfig:
    client_id = sec.string("client_id", "")
    issuer = sec.string("issuer", "")
    if client_id and not issuer:
        issuer = MASKINPORTEN_ISSUERS.get(altinn.environment, "")
        if not issuer:
            where = f"environment {altinn.environment!r}" if altinn.environment else "no [altinn] environment"
            raise ConfigError(sec.name("issuer"), f"is required: Maskinporten's issuer is not published for {where}")
    if issuer:
        check_url(sec.name("issuer"), issuer)
        # Maskinporten refuses an assertion whose aud is not its issuer exactly, trailing "/" included
        # (https://test.maskinporten.no/), and the issuer is the aud: a slash left out would fail every grant.
        issuer = issuer if issuer.endswith("/") else issuer + "/"
    kid = sec.string("kid", "")
    private_key_file = _optional_path(sec, "private_key_file", base_dir)
    certificate_file = _optional_path(sec, "certificate_file", base_dir)
    if client_id and not (private_key_file or certificate_file):
        raise ConfigError(
            sec.name("private_key_file"), "is required (or certificate_file) to sign the Maskinporten grant"
        )
    if kid and not private_key_file:
        raise ConfigError(sec.name("kid"), "is set but private_key_file is not: the kid names a key, give its file")
    for item, file in (("private_key_file", private_key_file), ("certificate_file", certificate_file)):
        if file is not None and not file.is_file():
            raise ConfigError(sec.name(item), f"file {file} does not exist")
    org = sec.string("system_user_org", "")
    digits = org.removeprefix("0192:")
    if org and not re.fullmatch(r"\d{9}", digits):
        raise ConfigError(sec.name("system_user_org"), f"must be a 9-digit organisation number, got {org!r}")
    return MaskinportenConfig(
        issuer=issuer,
        client_id=client_id,
        kid=kid,
        private_key_file=private_key_file,
        certificate_file=certificate_file,
        certificate_password=sec.string("certificate_password", ""),
        scopes=sec.strings("scopes"),
        system_user_org=digits,
    )


def _parse_dispatch(sec: Section) -> DispatchConfig:
    return DispatchConfig(
        concurrency=sec.integer("concurrency", 8, minimum=1, maximum=256),
        max_attempts=sec.integer("max_attempts", 12, minimum=1),
        max_age=sec.duration("max_age", 48 * 3600.0),
        backoff_base=sec.duration("backoff_base", 1.0),
        backoff_cap=sec.duration("backoff_cap", 600.0),
        lease=sec.duration("lease", 300.0),
        poll_interval=sec.duration("poll_interval", 1.0),
        step_timeout=sec.duration("step_timeout", 300.0),
    )


def _parse_pipelines(items: list[Any]) -> tuple[PipelineConfig, ...]:
    pipelines = []
    for i, item in enumerate(items):
        sec = Section(item, f"pipelines[{i}]")
        types = sec.strings("types")
        handlers = sec.strings("handlers")
        if not types:
            raise ConfigError(sec.name("types"), "must list at least one event type or glob")
        if not handlers:
            raise ConfigError(sec.name("handlers"), "must list at least one handler")
        sec.done()
        pipelines.append(PipelineConfig(types=types, handlers=handlers))
    return tuple(pipelines)


def _parse_handlers(table: dict[str, Any]) -> dict[str, HandlerSection]:
    sections = {}
    for name, options in table.items():
        if not isinstance(options, dict):
            raise ConfigError(f"handlers.{name}", "must be a table ([handlers.NAME])")
        sec = Section(options, f"handlers.{name}")
        use = sec.data.pop("use", name)
        if not isinstance(use, str) or not use:
            raise ConfigError(f"handlers.{name}.use", "must name a handler")
        step_timeout = sec.duration("step_timeout", 0.0) if "step_timeout" in sec.data else None
        sections[name] = HandlerSection(name=name, use=use, options=sec.data, step_timeout=step_timeout)
    return sections


def check_resource_urn(key: str, resource: str) -> str:
    """Altinn's URN rule for resource filters (events contract §1.2): lower case only."""
    if not URN_PATTERN.fullmatch(resource):
        hint = " (Altinn accepts lower case only)" if resource.lower() != resource else ""
        raise ConfigError(key, f"must be a resource URN like urn:altinn:resource:my-resource, got {resource!r}{hint}")
    return resource


def _parse_subscriptions(items: list[Any]) -> tuple[SubscriptionConfig, ...]:
    subs = []
    for i, item in enumerate(items):
        sec = Section(item, f"subscriptions[{i}]")
        resource = sec.string("resource", "")
        if not resource:
            raise ConfigError(sec.name("resource"), "is required (e.g. urn:altinn:resource:my-resource)")
        check_resource_urn(sec.name("resource"), resource)
        subject = sec.string("subject", "")
        type_ = sec.string("type", "")
        sec.done()
        subs.append(SubscriptionConfig(resource=resource, subject=subject, type=type_))
    return tuple(subs)


def _parse_catchup(sec: Section) -> CatchupConfig:
    return CatchupConfig(
        interval=sec.duration("interval", 300.0),
        start=sec.choice("start", ("now", "beginning"), "now"),
        enabled=sec.boolean("enabled", True),
    )


def _section(data: Section, item: str) -> Section:
    return Section(data.table(item), item)


def parse_config(data: Mapping[str, Any], environ: Mapping[str, str], base_dir: Path = Path(".")) -> Config:
    """Validate a parsed TOML document into a Config; `base_dir` anchors relative paths."""
    top = Section(_expand_tree(dict(data), "", environ), "")
    parsed: dict[str, Any] = {}

    def read(item: str, parse: Callable[[Section], Any]) -> None:
        sec = _section(top, item)
        parsed[item] = parse(sec)
        sec.done()

    read("receiver", _parse_receiver)
    read("store", lambda s: StoreConfig(path=_optional_path(s, "path", base_dir) or base_dir / "receiver.db"))
    read("altinn", _parse_altinn)
    read("maskinporten", lambda s: _parse_maskinporten(s, parsed["altinn"], base_dir))
    read("dispatch", _parse_dispatch)
    read("catchup", _parse_catchup)
    read("log", lambda s: LogConfig(level=s.choice("level", ("debug", "info", "warning", "error"), "info")))
    parsed["pipelines"] = _parse_pipelines(top.tables("pipelines"))
    parsed["handlers"] = _parse_handlers(top.table("handlers"))
    parsed["subscriptions"] = _parse_subscriptions(top.tables("subscriptions"))
    top.done()
    config = Config(**parsed)
    if config.maskinporten.configured:
        token_scope_sets(config)  # a role without the scopes it needs stops every command here, with exit status 2
    return config


def token_scope_sets(config: Config) -> dict[str, tuple[str, ...]]:
    """The scopes each family of Altinn calls asks for, {purpose: scopes} (`receiver.scopes`); ConfigError naming
    the scope `[altinn] role` needs and `[maskinporten] scopes` lacks."""
    try:
        return scope_sets(config.altinn.role, config.maskinporten.scopes)
    except MissingScope as exc:
        raise ConfigError("maskinporten.scopes", str(exc)) from None
