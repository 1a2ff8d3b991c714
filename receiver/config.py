"""The receiver's configuration: a TOML file read into frozen dataclasses, one per section.

Each key is declared once, below, as a field with its type, default and rules (`receiver.validation.setting`); one
validator reads every section and every handler's options the same way (`${NAME}` forms, `*_file` for secrets,
durations, ranges). Checks that span keys or sections follow in `_finish`. Every problem raises ConfigError naming
the key (`receiver.port`) and what is wrong; the command line turns it into one line on stderr and exit status 2.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from receiver.scopes import NEEDED, MissingScope, scope_sets
from receiver.validation import ConfigError, Duration, Invalid, Source, build, each, setting

CONFIG_ENV = "ALTINN_RECEIVER_CONFIG"
DEFAULT_CONFIG_FILE = "receiver.toml"
MIN_SECRET_LENGTH = 16
MIN_CONSOLE_TOKEN_LENGTH = 32
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

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


# --- checks of single values (ValueError says what is wrong; the validator names the key) ---


def _url_problem(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        return f"must be an absolute {' or '.join(schemes)} URL, got {value!r}"
    return ""


def _absolute_url(value: str) -> str:
    """An absolute https or http URL, or empty (the keys that take one may be left empty)."""
    if value and (problem := _url_problem(value, ("https", "http"))):
        raise ValueError(problem)
    return value


def check_url(key: str, value: str, *, schemes: tuple[str, ...] = ("https", "http")) -> str:
    """`value` if it is an absolute URL of one of `schemes`; ConfigError naming `key` otherwise."""
    if problem := _url_problem(value, schemes):
        raise ConfigError(key, problem)
    return value


POSTGRESQL_EXTRA = "altinn-receiver[postgres]"


def _postgresql_url(value: str) -> str:
    """A libpq URL (its password may be in it, so the problem never shows the value)."""
    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres") or not parts.netloc:
        raise ValueError("must be a postgresql:// URL such as postgresql://receiver@db.example:5432/receiver")
    return value


def check_store_url(key: str, value: str) -> str:
    """`value` if it is a PostgreSQL URL the receiver can use (the driver installed); ConfigError naming `key`."""
    try:
        _postgresql_url(value)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    if problem := _postgresql_driver():
        raise ConfigError(key, problem)
    return value


def _postgresql_driver() -> str:
    """Why the PostgreSQL driver cannot be used ("" when it can)."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        return f"needs the PostgreSQL driver ({exc.name} is not installed): install {POSTGRESQL_EXTRA}"
    return ""


def _webhook_path(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"must start with '/', got {path!r}")
    return path


def _webhook_secret(secret: str) -> str:
    """The code anyone who knows it can push with: long enough not to be guessed (an empty one is `_finish`'s)."""
    if secret and not secret.strip():
        raise ValueError("must not be only whitespace")
    if secret and len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"must be at least {MIN_SECRET_LENGTH} characters, or anyone who guesses it can push events; make one "
            "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return secret


def _not_empty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _network(cidr: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ValueError(f"must be an IP network in CIDR form, got {cidr!r}") from None


def _proxy(proxy: str) -> str:
    if proxy != "*":
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(f'must be an IP address, CIDR or "*", got {proxy!r}') from None
    return proxy


def _public_url(url: str) -> str:
    _absolute_url(url)
    if urlsplit(url).query:
        raise ValueError("must not have a query string: the code is appended as ?code=")
    return url


def _one_of(choices: Mapping[str, Any] | tuple[str, ...], *, empty: bool = False) -> Any:
    def check(value: str) -> str:
        if value not in choices and not (empty and not value):
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    return check


def _existing(path: Path) -> Path:
    if not path.exists():
        raise ValueError(f"file {path} does not exist")
    return path


def _organisation_number(org: str) -> str:
    digits = org.removeprefix("0192:")
    if org and not re.fullmatch(r"\d{9}", digits):
        raise ValueError(f"must be a 9-digit organisation number, got {org!r}")
    return digits


def _resource_urn(resource: str) -> str:
    """Altinn's URN rule for resource filters (events contract §1.2): lower case only."""
    if not URN_PATTERN.fullmatch(resource):
        hint = " (Altinn accepts lower case only)" if resource.lower() != resource else ""
        raise ValueError(f"must be a resource URN like urn:altinn:resource:my-resource, got {resource!r}{hint}")
    return resource


def check_resource_urn(key: str, resource: str) -> str:
    try:
        return _resource_urn(resource)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None


def _file_mode(text: str) -> str:
    if not re.fullmatch(r"0?[0-7]{3}", text):
        raise ValueError(f'must be an octal file mode such as "0600" or "0640", got {text!r}')
    if int(text, 8) & 0o600 != 0o600:
        raise ValueError(f"must let the owner read and write the store (0600 at least), got {text!r}")
    return text


def _longer_than_zero(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"must be longer than zero, got {seconds:g}s")
    return seconds


def _at_least_one(what: str) -> Any:
    def check(items: tuple[str, ...]) -> tuple[str, ...]:
        if not items:
            raise ValueError(f"must list at least one {what}")
        return items

    return check


# --- the sections ---


@dataclass(frozen=True)
class ReceiverConfig:
    host: str = "127.0.0.1"
    port: int = setting(8080, minimum=0, maximum=65535)
    path: str = setting("/events", check=_webhook_path)
    secret: str = setting("", secret=True, check=_webhook_secret)
    previous_secrets: tuple[str, ...] = setting((), secret=True, check=each(_not_empty))
    """Exempt from the length rule: a short old code must still be accepted while it is rotated away."""
    allow_no_secret: bool = False
    max_body_bytes: int = setting(65536, minimum=256)
    trusted_networks: tuple[IPNetwork, ...] = setting((), raw=tuple[str, ...], check=each(_network))
    forwarded_allow_ips: tuple[str, ...] = setting((), check=each(_proxy))
    shutdown_timeout: Duration = 20.0
    public_url: str = setting("", check=_public_url)
    read_timeout: Duration = setting(30.0, positive=True)
    """How long a request's head and body may take to arrive (from its first byte; the connection's opening for
    its first request) before the connection is closed."""
    keepalive_timeout: Duration = setting(5.0, positive=True)
    """How long an idle connection is kept open between requests (uvicorn's `timeout_keep_alive`)."""
    max_connections: int = setting(1000, minimum=1)
    """Connections held at once; beyond it a new connection is answered 503 with Retry-After and closed."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every code that is accepted: the current one first."""
        return tuple(s for s in (self.secret, *self.previous_secrets) if s)


@dataclass(frozen=True)
class StoreConfig:
    """Where the store is: the SQLite file at `path` (the default), or the PostgreSQL database at `url`."""

    path: Path = Path("receiver.db")
    url: str = setting("", secret=True, check=_postgresql_url)
    file_mode: str = setting("0600", check=_file_mode)
    """The mode the store, its WAL and its backups are created with, in octal (SQLite)."""
    check_on_start: bool = True

    @property
    def mode(self) -> int:
        return int(self.file_mode, 8)


@dataclass(frozen=True)
class AltinnConfig:
    environment: str = setting("", check=_one_of(PLATFORM_URLS, empty=True))
    platform_url: str = setting("", check=_absolute_url)
    subscription_key: str = setting("", secret=True)
    role: str = setting("service-owner", check=_one_of(ROLES))


@dataclass(frozen=True)
class MaskinportenConfig:
    issuer: str = setting("", check=_absolute_url)
    client_id: str = ""
    kid: str = ""
    private_key_file: Path | None = setting(None, check=_existing)
    certificate_file: Path | None = setting(None, check=_existing)
    certificate_password: str = setting("", secret=True)
    scopes: tuple[str, ...] = ()
    system_user_org: str = setting("", check=_organisation_number)

    @property
    def configured(self) -> bool:
        return bool(self.client_id)


@dataclass(frozen=True)
class DispatchConfig:
    concurrency: int = setting(8, minimum=1, maximum=256)
    max_attempts: int = setting(12, minimum=1)
    max_age: Duration = setting(48 * 3600.0, positive=True)
    backoff_base: Duration = setting(1.0, positive=True)
    backoff_cap: Duration = setting(600.0, positive=True)
    lease: Duration = setting(300.0, positive=True)
    poll_interval: Duration = setting(1.0, positive=True)
    step_timeout: Duration = setting(300.0, positive=True)
    """How long one handler may run on one event before it is cancelled (`[handlers.NAME] step_timeout` wins)."""


@dataclass(frozen=True)
class PipelineConfig:
    types: tuple[str, ...] = setting(check=_at_least_one("event type or glob"))
    handlers: tuple[str, ...] = setting(check=_at_least_one("handler"))


@dataclass(frozen=True)
class HandlerSection:
    """A `[handlers.NAME]` section: `use` names the handler it instantiates (default: NAME itself), `step_timeout`
    overrides `[dispatch] step_timeout`; `options` are the section's other keys as written, checked against the
    handler's `Options` when the pipelines load."""

    name: str
    use: str
    options: Mapping[str, Any] = setting(default_factory=dict, key=False)
    step_timeout: Duration | None = None


@dataclass(frozen=True)
class _HandlerKeys:
    """The receiver's keys of a `[handlers.NAME]` section besides `use`, read with the validator; like `use` they
    never reach the handler's `Options`."""

    step_timeout: Duration | None = setting(None, check=_longer_than_zero)


def _handler_sections(table: Mapping[str, Any]) -> dict[str, HandlerSection]:
    """Each `[handlers.NAME]` table as written: `use` taken out, the rest kept for the handler's `Options` (and
    `step_timeout`, which `_read_handler_keys` reads once the environment and folder are at hand)."""
    sections = {}
    for name, options in table.items():
        if not isinstance(options, Mapping):
            raise Invalid("must be a table ([handlers.NAME])", f".{name}")
        rest = dict(options)
        use = rest.pop("use", name)
        if not isinstance(use, str) or not use:
            raise Invalid("must name a handler", f".{name}.use")
        sections[name] = HandlerSection(name=name, use=use, options=rest)
    return sections


def _read_handler_keys(sections: Mapping[str, HandlerSection], source: Source) -> dict[str, HandlerSection]:
    """The sections with their `step_timeout` read as `[dispatch] step_timeout` is (a duration, `${NAME}` forms) and
    taken out of the options."""
    read = {}
    for name, section in sections.items():
        options = dict(section.options)
        given = {"step_timeout": options.pop("step_timeout")} if "step_timeout" in options else {}
        keys = build(_HandlerKeys, given, f"handlers.{name}", source)
        read[name] = replace(section, options=options, step_timeout=keys.step_timeout)
    return read


@dataclass(frozen=True)
class SubscriptionConfig:
    resource: str = setting(check=_resource_urn, example="e.g. urn:altinn:resource:my-resource")
    subject: str = ""
    type: str = ""


@dataclass(frozen=True)
class CatchupConfig:
    interval: Duration = setting(300.0, positive=True)
    start: Literal["now", "beginning"] = "now"
    enabled: bool = True


ALTINN_KEEPS_EVENTS = 90 * 86400.0
"""Altinn's pull API serves an event for 90 days: until then its id can arrive again, by catch-up."""


def _kept_while_altinn_can_resend(seconds: float) -> float:
    if seconds < ALTINN_KEEPS_EVENTS:
        raise ValueError(
            "must be at least 90d: Altinn can send an event again for 90 days, and the id of a deleted event would"
            " be taken as new"
        )
    return seconds


@dataclass(frozen=True)
class RetentionConfig:
    """How long the inbox keeps what (docs/store.md): `done` and `skipped` events lose their payload after `done`
    (their id stays), `dead` events are deleted after `dead`. Seconds, counted from when the event finished."""

    done: Duration = setting(90 * 86400.0, positive=True)
    dead: Duration = setting(180 * 86400.0, check=_kept_while_altinn_can_resend)


def _console_token(token: str) -> str:
    """The token that opens the console to whoever holds it: long enough never to be guessed."""
    if len(token.strip()) < MIN_CONSOLE_TOKEN_LENGTH:
        raise ValueError(
            f"must be at least {MIN_CONSOLE_TOKEN_LENGTH} characters (check the environment variable or file it "
            "comes from); make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


@dataclass(frozen=True)
class ConsoleConfig:
    """The operator console (docs/console.md): its own listener, never the webhook's; off without `[console]`."""

    token: str = setting(secret=True, check=_console_token, example='token = "${ALTINN_RECEIVER_CONSOLE_TOKEN}"')
    host: str = "127.0.0.1"
    port: int = setting(8081, minimum=0, maximum=65535)
    read_only: bool = False
    session_lifetime: Duration = setting(8 * 3600.0, positive=True)


@dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class Config:
    """The whole file: a section is a field here, with its dataclass above."""

    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    altinn: AltinnConfig = field(default_factory=AltinnConfig)
    maskinporten: MaskinportenConfig = field(default_factory=MaskinportenConfig)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    pipelines: tuple[PipelineConfig, ...] = ()
    handlers: Mapping[str, HandlerSection] = setting(default_factory=dict, raw=dict[str, Any], check=_handler_sections)
    subscriptions: tuple[SubscriptionConfig, ...] = ()
    catchup: CatchupConfig = field(default_factory=CatchupConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    log: LogConfig = field(default_factory=LogConfig)
    console: ConsoleConfig | None = None
    source: Path | None = setting(None, key=False)
    """The file it was read from."""
    read_with: Source = setting(default_factory=Source, key=False)
    """The environment and folder it was read with: the handlers' options are read with them when the pipelines
    load."""


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
    except UnicodeDecodeError:
        raise ConfigError("", f"config file {file} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{file} is not valid TOML: {exc}") from None
    config = parse_config(data, environ if environ is not None else os.environ, base_dir=file.parent)
    return replace(config, source=file)


def parse_config(data: Mapping[str, Any], environ: Mapping[str, str], base_dir: Path = Path(".")) -> Config:
    """Validate a parsed TOML document into a Config; `base_dir` anchors relative paths."""
    source = Source(environ, base_dir)
    config = build(Config, data, "", source)
    config = replace(config, handlers=_read_handler_keys(config.handlers, source), read_with=source)
    return _finish(config, data)


def _finish(config: Config, data: Mapping[str, Any]) -> Config:
    """The checks that span keys or sections, and the values derived from others."""
    receiver = config.receiver
    if not receiver.secret and not receiver.allow_no_secret:
        written = data.get("receiver")
        given = isinstance(written, Mapping) and ("secret" in written or "secret_file" in written)
        raise ConfigError(
            "receiver.secret",
            ("is empty (check the environment variable or file it comes from): " if given else "is required: ")
            + 'set it (secret = "${ALTINN_RECEIVER_SECRET}", or secret_file = "/run/secrets/...") or set '
            "allow_no_secret = true",
        )
    _check_store(config.store, data.get("store"))
    altinn = config.altinn
    platform_url = altinn.platform_url or PLATFORM_URLS.get(altinn.environment, "")
    altinn = replace(altinn, platform_url=platform_url.rstrip("/"))
    config = replace(config, altinn=altinn, maskinporten=_finish_maskinporten(config.maskinporten, altinn))
    if config.maskinporten.configured:
        token_scope_sets(config)  # a role without the scopes it needs stops every command here, with exit status 2
    return config


def _check_store(store: StoreConfig, written: Any) -> None:
    if not store.url:
        return
    if isinstance(written, Mapping) and "path" in written:
        raise ConfigError("store", "set path (an SQLite file) or url (a PostgreSQL database), not both")
    if problem := _postgresql_driver():
        raise ConfigError("store.url", problem)


def _finish_maskinporten(mp: MaskinportenConfig, altinn: AltinnConfig) -> MaskinportenConfig:
    issuer = mp.issuer
    if mp.client_id and not issuer:
        issuer = MASKINPORTEN_ISSUERS.get(altinn.environment, "")
        if not issuer:
            where = f"environment {altinn.environment!r}" if altinn.environment else "no [altinn] environment"
            raise ConfigError("maskinporten.issuer", f"is required: Maskinporten's issuer is not published for {where}")
    if issuer:
        # Maskinporten refuses an assertion whose aud is not its issuer exactly, trailing "/" included
        # (https://test.maskinporten.no/), and the issuer is the aud: a slash left out would fail every grant.
        issuer = issuer if issuer.endswith("/") else issuer + "/"
    if mp.client_id and not (mp.private_key_file or mp.certificate_file):
        raise ConfigError(
            "maskinporten.private_key_file", "is required (or certificate_file) to sign the Maskinporten grant"
        )
    if mp.kid and not mp.private_key_file:
        raise ConfigError("maskinporten.kid", "is set but private_key_file is not: the kid names a key, give its file")
    return replace(mp, issuer=issuer)


def token_scope_sets(config: Config) -> dict[str, tuple[str, ...]]:
    """The scopes each family of Altinn calls asks for, {purpose: scopes} (`receiver.scopes`); ConfigError naming
    the scope `[altinn] role` needs and `[maskinporten] scopes` lacks."""
    try:
        return scope_sets(config.altinn.role, config.maskinporten.scopes)
    except MissingScope as exc:
        raise ConfigError("maskinporten.scopes", str(exc)) from None
