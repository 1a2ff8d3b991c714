"""Config: each key's bad values give a ConfigError naming the key; good values and defaults read as documented."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

import pytest

from receiver.config import Config, ConfigError, load_config, parse_config
from tests.support import write_config

BASE = '[receiver]\nsecret = "a-webhook-code-of-16+"\n'


def parse(text: str, environ: dict[str, str] | None = None, base_dir: Path = Path("/srv")) -> Config:
    return parse_config(tomllib.loads(text), environ or {}, base_dir=base_dir)


def error_key(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, environ)
    assert "\n" not in str(caught.value)
    return caught.value.key


def test_defaults_are_the_documented_ones() -> None:
    config = parse(BASE)
    receiver = config.receiver
    assert (receiver.host, receiver.port, receiver.path) == ("127.0.0.1", 8080, "/events")
    assert (receiver.max_body_bytes, receiver.shutdown_timeout, receiver.allow_no_secret) == (65536, 20.0, False)
    assert (receiver.previous_secrets, receiver.trusted_networks, receiver.forwarded_allow_ips) == ((), (), ())
    assert config.store.path == Path("/srv/receiver.db")
    assert (config.dispatch.concurrency, config.dispatch.max_attempts, config.dispatch.max_age) == (8, 12, 172800.0)
    assert (config.catchup.interval, config.catchup.start, config.catchup.enabled) == (300.0, "now", True)
    assert (config.retention.done, config.retention.dead) == (90 * 86400.0, 180 * 86400.0)
    assert config.log.level == "info"


def test_good_values_are_read() -> None:
    config = parse(
        '[receiver]\nsecret = "${SECRET}"\nprevious_secrets = ["old"]\nport = 9000\nhost = "0.0.0.0"\n'
        'path = "/altinn/events"\nmax_body_bytes = 1024\nshutdown_timeout = "1m30s"\n'
        'trusted_networks = ["20.100.46.139/32", "10.0.0.0/8"]\nforwarded_allow_ips = ["10.0.0.1", "*"]\n'
        '[store]\npath = "data/r.db"\n',
        {"SECRET": "from-the-environment"},
    )
    receiver = config.receiver
    assert receiver.secrets == ("from-the-environment", "old")
    assert (receiver.host, receiver.port, receiver.path, receiver.max_body_bytes) == (
        "0.0.0.0",
        9000,
        "/altinn/events",
        1024,
    )
    assert receiver.shutdown_timeout == 90.0
    assert receiver.trusted_networks[0] == ipaddress.ip_network("20.100.46.139/32")
    assert config.store.path == Path("/srv/data/r.db")


def test_retention_reads_durations_and_keeps_dead_ids_while_altinn_can_send_them() -> None:
    config = parse(BASE + '[retention]\ndone = "7d"\ndead = "365d"\n')
    assert (config.retention.done, config.retention.dead) == (7 * 86400.0, 365 * 86400.0)
    with pytest.raises(ConfigError) as caught:
        parse(BASE + '[retention]\ndead = "30d"\n')
    assert str(caught.value).startswith("retention.dead: must be at least 90d: Altinn can send an event again")


def test_step_timeout_is_read_like_every_duration_and_kept_out_of_the_handlers_options() -> None:
    text = BASE + (
        '[dispatch]\nstep_timeout = "${STEP:-2m}"\n'
        '[handlers.archive]\nuse = "forward_http"\nstep_timeout = "${ARCHIVE_STEP}"\nurl = "https://a.example/in"\n'
    )
    config = parse(text, {"ARCHIVE_STEP": "90s"})
    archive = config.handlers["archive"]
    assert (config.dispatch.step_timeout, archive.step_timeout) == (120.0, 90.0)
    assert dict(archive.options) == {"url": "https://a.example/in"}, "use and step_timeout are the receiver's keys"
    assert parse(BASE + "[handlers.log]\n").handlers["log"].step_timeout is None
    assert parse(BASE).dispatch.step_timeout == 300.0
    with pytest.raises(ConfigError) as caught:
        parse(BASE + '[handlers.log]\nstep_timeout = "0s"\n')
    assert (caught.value.key, caught.value.problem) == ("handlers.log.step_timeout", "must be longer than zero, got 0s")
    assert error_key(BASE + '[handlers.log]\nstep_timeout = "soon"\n') == "handlers.log.step_timeout"
    assert error_key(BASE + '[dispatch]\nstep_timeout = "0s"\n') == "dispatch.step_timeout"


def test_allow_no_secret_makes_the_secret_optional() -> None:
    assert parse("[receiver]\nallow_no_secret = true\n").receiver.secrets == ()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[receiver]\nport = 1\n", "receiver.secret"),
        (BASE + "host = 5\n", "receiver.host"),
        (BASE + 'port = "80"\n', "receiver.port"),
        (BASE + "port = 70000\n", "receiver.port"),
        (BASE + "port = -1\n", "receiver.port"),
        (BASE + "port = true\n", "receiver.port"),
        (BASE + 'path = "events"\n', "receiver.path"),
        ("[receiver]\nsecret = 5\n", "receiver.secret"),
        (BASE + 'previous_secrets = "old"\n', "receiver.previous_secrets"),
        (BASE + 'previous_secrets = [""]\n', "receiver.previous_secrets[0]"),
        (BASE + "previous_secrets = [1]\n", "receiver.previous_secrets[0]"),
        (BASE + 'allow_no_secret = "yes"\n', "receiver.allow_no_secret"),
        (BASE + "max_body_bytes = 100\n", "receiver.max_body_bytes"),
        (BASE + 'max_body_bytes = "64k"\n', "receiver.max_body_bytes"),
        (BASE + 'trusted_networks = ["10.0.0.0/33"]\n', "receiver.trusted_networks[0]"),
        (BASE + 'trusted_networks = "10.0.0.0/8"\n', "receiver.trusted_networks"),
        (BASE + 'forwarded_allow_ips = ["proxy.local"]\n', "receiver.forwarded_allow_ips[0]"),
        (BASE + 'shutdown_timeout = "20 seconds"\n', "receiver.shutdown_timeout"),
        (BASE + "shutdown_timeout = -1\n", "receiver.shutdown_timeout"),
        (BASE + 'public_url = "ftp://x"\n', "receiver.public_url"),
        (BASE + 'public_url = "https://x.example/events?code=1"\n', "receiver.public_url"),
        (BASE + "unknown = 1\n", "receiver.unknown"),
        (BASE + "[store]\npath = 5\n", "store.path"),
        (BASE + "[store]\nfile = 'x'\n", "store.file"),
        (BASE + '[altinn]\nenvironment = "prod"\n', "altinn.environment"),
        (BASE + '[altinn]\nplatform_url = "platform.altinn.no"\n', "altinn.platform_url"),
        (BASE + '[altinn]\nrole = "owner"\n', "altinn.role"),
        (BASE + '[maskinporten]\nclient_id = "c"\nprivate_key_file = "/dev/null"\n', "maskinporten.issuer"),
        (BASE + '[maskinporten]\nkid = "k"\n', "maskinporten.kid"),
        (BASE + '[maskinporten]\nsystem_user_org = "12"\n', "maskinporten.system_user_org"),
        (BASE + "[dispatch]\nconcurrency = 0\n", "dispatch.concurrency"),
        (BASE + "[dispatch]\nmax_attempts = 0\n", "dispatch.max_attempts"),
        (BASE + '[dispatch]\nmax_age = "forever"\n', "dispatch.max_age"),
        (BASE + '[dispatch]\nbackoff_base = "0s"\n', "dispatch.backoff_base"),
        (BASE + '[dispatch]\nbackoff_cap = "x"\n', "dispatch.backoff_cap"),
        (BASE + "[dispatch]\nlease = 0\n", "dispatch.lease"),
        (BASE + '[dispatch]\npoll_interval = "-1s"\n', "dispatch.poll_interval"),
        (BASE + '[catchup]\ninterval = "0"\n', "catchup.interval"),
        (BASE + '[catchup]\nstart = "yesterday"\n', "catchup.start"),
        (BASE + '[catchup]\nenabled = "no"\n', "catchup.enabled"),
        (BASE + '[retention]\ndone = "0s"\n', "retention.done"),
        (BASE + '[retention]\ndone = "a while"\n', "retention.done"),
        (BASE + '[retention]\ndead = "89d"\n', "retention.dead"),
        (BASE + "[retention]\npayloads = '1d'\n", "retention.payloads"),
        (BASE + '[log]\nlevel = "loud"\n', "log.level"),
        (BASE + "[[pipelines]]\ntypes = []\nhandlers = ['log']\n", "pipelines[0].types"),
        (BASE + "[[pipelines]]\ntypes = ['*']\nhandlers = []\n", "pipelines[0].handlers"),
        (BASE + "[handlers]\nlog = 1\n", "handlers.log"),
        (BASE + "[[subscriptions]]\nsubject = 'x'\n", "subscriptions[0].resource"),
        (BASE + "[[subscriptions]]\nresource = 'urn:altinn:resource:Upper'\n", "subscriptions[0].resource"),
        ("typo = 1\n" + BASE, "typo"),
    ],
)
def test_bad_values_name_the_key(text: str, key: str) -> None:
    assert error_key(text) == key


def test_an_unset_environment_variable_names_the_key_and_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        parse('[receiver]\nsecret = "${RECEIVER_SECRET}"\n')
    assert caught.value.key == "receiver.secret"
    assert "RECEIVER_SECRET" in caught.value.problem


def test_load_config_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write_config(tmp_path / "bad.toml", "[receiver\n"))
    loaded = load_config(write_config(tmp_path / "good.toml", BASE + '[store]\npath = "r.db"\n'))
    assert loaded.store.path == tmp_path / "r.db"
    assert loaded.source == tmp_path / "good.toml"


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("fifteen-chars-x", "must be at least 16 characters"),
        (" " * 20, "must not be only whitespace"),
    ],
)
def test_the_webhook_secret_must_be_long_and_not_blank(secret: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f'[receiver]\nsecret = "{secret}"\n')
    assert caught.value.key == "receiver.secret" and caught.value.problem.startswith(problem)
    assert secret not in caught.value.problem


def test_previous_secrets_may_be_short_so_an_old_code_can_be_rotated_away() -> None:
    config = parse(BASE + 'previous_secrets = ["old"]\n')
    assert config.receiver.secrets == ("a-webhook-code-of-16+", "old")


def test_the_console_is_off_without_its_section_and_reads_its_keys_with_it() -> None:
    assert parse(BASE).console is None
    token = "t" * 32
    console = parse(BASE + '[console]\ntoken = "${CONSOLE_TOKEN}"\n', {"CONSOLE_TOKEN": token}).console
    assert console is not None and console.token == token
    assert (console.host, console.port, console.read_only, console.session_lifetime) == (
        "127.0.0.1",
        8081,
        False,
        8 * 3600.0,
    )
    console = parse(
        BASE + f'[console]\ntoken = "{token}"\nport = 0\nread_only = true\nsession_lifetime = "30m"\n'
    ).console
    assert console is not None and (console.port, console.read_only, console.session_lifetime) == (0, True, 1800.0)
    assert token not in repr(console)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("", "console.token"),
        ('token = "${CONSOLE_TOKEN}"', "console.token"),
        ('token = "short-but-secret"', "console.token"),
        (f'token = "{"t" * 31} "', "console.token"),
        (f'token = "{"t" * 32}"\nport = 70000', "console.port"),
        (f'token = "{"t" * 32}"\nsession_lifetime = "0s"', "console.session_lifetime"),
    ],
)
def test_bad_console_keys_name_the_key(section: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + f"[console]\n{section}\n", {"CONSOLE_TOKEN": "too-short"})
    assert caught.value.key == key
    assert "short-but-secret" not in str(caught.value) and "too-short" not in str(caught.value)
