"""The config as an operator meets it: a file, an environment, `altinn-receiver config validate|show`, `serve` and
`check`; the exit status and the one line each prints. The validator's own rules are in test_validation.py."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.altinn_support import new_key, write_pem_key
from tests.ingest_support import ServeProcess, new_event, push, run_cli, webhook
from tests.support import write_config

GOOD_SECRET = "a-webhook-code-nobody-guesses-0123"
FORMS = "(the forms are ${NAME}, ${NAME:-default} or ${NAME:?message}, and $$ for a literal $)"
ALTINN = """
[altinn]
environment = "tt02"

[maskinporten]
client_id = "0b1e5bd6-client"
kid = "receiver-2026"
private_key_file = "key.pem"
scopes = ["altinn:correspondence.write", "altinn:events.subscribe", "altinn:serviceowner"]
"""


def config(tmp_path: Path, text: str) -> Path:
    return write_config(tmp_path / "receiver.toml", text)


def validate(path: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = run_cli("config", "validate", "--config", str(path), env=env)
    return result.returncode, result.stdout, result.stderr


def only_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("receiver", "env", "line"),
    [
        (
            'secret = "$ALTINN_RECEIVER_SECRET"',
            {"ALTINN_RECEIVER_SECRET": GOOD_SECRET},
            f"receiver.secret: a shell-style $NAME is not expanded here: write ${{NAME}} {FORMS}",
        ),
        ('secret = "${ALTINN_RECEIVER_SECRET"', {}, f'receiver.secret: has "${{" without its closing "}}" {FORMS}'),
        ('secret = "${}"', {}, f'receiver.secret: has a "${{...}}" that is not an environment reference {FORMS}'),
        (
            'secret = "${ALTINN_RECEIVER_SECRET:?put the webhook code in the Secret}"',
            {"ALTINN_RECEIVER_SECRET": ""},
            "receiver.secret: environment variable ALTINN_RECEIVER_SECRET is not set or empty: put the webhook code "
            "in the Secret",
        ),
        (
            'secret = "${ALTINN_RECEIVER_SECRET}"',
            {"ALTINN_RECEIVER_SECRET": "short-code"},
            "receiver.secret: must be at least 16 characters, or anyone who guesses it can push events; make one "
            "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        ),
        ('secret = "                    "', {}, "receiver.secret: must not be only whitespace"),
        ("secret = 987654321987654321", {}, "receiver.secret: must be a string, got a whole number"),
        (
            f'secret = "{GOOD_SECRET}"\nport = "${{PORT}}"',
            {"PORT": "eighty"},
            "receiver.port: must be a whole number; the environment gave 'eighty'",
        ),
        (
            f'secret = "{GOOD_SECRET}"\nport = "8080"',
            {},
            "receiver.port: must be a whole number, got the string '8080': write it without quotes",
        ),
    ],
)
def test_config_mistakes_exit_2_with_one_line_naming_the_key_and_never_the_secret(
    tmp_path: Path, receiver: str, env: dict[str, str], line: str
) -> None:
    code, stdout, stderr = validate(config(tmp_path, f"[receiver]\n{receiver}\n"), env)
    assert (code, stdout) == (2, "")
    assert only_line(stderr) == f"config error: {line}"
    assert "987654321" not in stderr and GOOD_SECRET not in stderr and "short-code" not in stderr


def test_a_secret_typed_as_a_number_is_not_echoed(tmp_path: Path) -> None:
    write_pem_key(new_key(), tmp_path / "key.pem")
    text = f'[receiver]\nsecret = "{GOOD_SECRET}"\n{ALTINN}certificate_password = 987654321\n'
    code, _, stderr = validate(config(tmp_path, text))
    assert code == 2
    assert only_line(stderr) == "config error: maskinporten.certificate_password: must be a string, got a whole number"


def test_environment_defaults_typed_keys_and_secret_files_are_what_serve_runs_with(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(GOOD_SECRET + "\n")  # as `kubectl create secret --from-file` leaves it
    text = (
        '[receiver]\nsecret_file = "secret"\nport = "${PORT}"\nmax_body_bytes = "${MAX_BODY:-131072}"\n'
        'public_url = "${PUBLIC_URL:-https://receiver.example.no/events}"\nshutdown_timeout = "${GRACE}"\n'
        'allow_no_secret = "${DEV:-false}"\n'
    )
    path = config(tmp_path, text)
    env = {"PORT": "9443", "GRACE": "45s"}
    assert validate(path, env)[0] == 0
    shown = json.loads(run_cli("config", "show", "--json", "--config", str(path), env=env).stdout)["receiver"]
    assert (shown["port"], shown["max_body_bytes"], shown["allow_no_secret"]) == (9443, 131072, False)
    assert (shown["public_url"], shown["shutdown_timeout"], shown["secret"]) == (
        "https://receiver.example.no/events",
        "45s",
        "***",
    )


def test_serve_takes_the_webhook_code_from_a_secret_file_without_its_trailing_newline(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(GOOD_SECRET + "\n")
    serve = ServeProcess(tmp_path, secret=None, secret_file=str(secret_file))
    with serve, httpx.Client(timeout=10) as client:
        assert push(client, webhook(serve.url, GOOD_SECRET), new_event()).status_code == 200
        assert push(client, webhook(serve.url, GOOD_SECRET + "%0A"), new_event()).status_code == 401


SECRETS = [GOOD_SECRET, "old-code", "apim-subscription-key-123", "p12-password-987", "forward-token-456", "q-code-789"]


def test_config_show_prints_the_effective_config_with_every_secret_masked(tmp_path: Path) -> None:
    write_pem_key(new_key(), tmp_path / "key.pem", password="p12-password-987")
    altinn = ALTINN.replace("[altinn]\n", '[altinn]\nsubscription_key = "apim-subscription-key-123"\n')
    path = config(
        tmp_path,
        '[receiver]\nsecret = "${SECRET}"\nprevious_secrets = ["old-code"]\n'
        f'{altinn}certificate_password = "p12-password-987"\n'
        '[[pipelines]]\ntypes = ["*"]\nhandlers = ["store", "archive"]\n'
        '[handlers.archive]\nuse = "forward_http"\nurl = "https://archive.example/in?code=q-code-789"\n'
        'headers = { Authorization = "Bearer forward-token-456" }\n',
    )
    env = {"SECRET": GOOD_SECRET}
    as_toml = run_cli("config", "show", "--config", str(path), env=env)
    as_json = run_cli("config", "show", "--json", "--config", str(path), env=env)
    assert (as_toml.returncode, as_json.returncode) == (0, 0), as_toml.stderr + as_json.stderr
    for secret in SECRETS:
        assert secret not in as_toml.stdout + as_json.stdout, secret
    shown = json.loads(as_json.stdout)
    assert (shown["receiver"]["secret"], shown["receiver"]["previous_secrets"]) == ("***", ["***"])
    assert shown["altinn"]["subscription_key"] == shown["maskinporten"]["certificate_password"] == "***"
    assert shown["handlers"]["archive"] == {
        "use": "forward_http", "url": "***", "mode": "structured", "headers": {"Authorization": "***"},
        "timeout": "10s",
    }  # fmt: skip
    assert shown["dispatch"]["max_age"] == "48h" and shown["maskinporten"]["issuer"] == "https://test.maskinporten.no/"

    def without_unset(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_unset(v) for k, v in value.items() if v is not None}
        return [without_unset(v) for v in value] if isinstance(value, list) else value

    assert tomllib.loads(as_toml.stdout) == without_unset(shown), "the TOML says what the JSON says"


def test_config_show_lists_the_pipelines_that_run_when_the_file_has_none(tmp_path: Path) -> None:
    path = config(tmp_path, f'[receiver]\nsecret = "{GOOD_SECRET}"\n')
    shown = json.loads(run_cli("config", "show", "--json", "--config", str(path)).stdout)
    assert shown["pipelines"] == [
        {"types": ["no.altinn.correspondence.correspondence*"], "handlers": ["store"]},
        {"types": ["no.altinn.correspondence.attachment*", "no.altinn.correspondence.notification*"],
         "handlers": ["store"]},
    ]  # fmt: skip
    assert shown["handlers"] == {"store": {"use": "store"}}


def test_config_show_gives_a_handlers_own_step_timeout_beside_its_options(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        f'[receiver]\nsecret = "{GOOD_SECRET}"\n[dispatch]\nstep_timeout = "2m"\n'
        '[[pipelines]]\ntypes = ["*"]\nhandlers = ["store", "archive"]\n'
        '[handlers.archive]\nuse = "forward_http"\nstep_timeout = "90s"\nurl = "https://archive.example/in"\n',
    )
    shown = json.loads(run_cli("config", "show", "--json", "--config", str(path)).stdout)
    assert shown["dispatch"]["step_timeout"] == "2m"
    assert shown["handlers"]["store"] == {"use": "store"}
    assert shown["handlers"]["archive"] == {
        "use": "forward_http", "step_timeout": "1m30s", "url": "***", "mode": "structured", "headers": {},
        "timeout": "10s",
    }  # fmt: skip


def test_a_handler_option_serve_refuses_is_refused_by_validate_and_check_with_the_same_line(tmp_path: Path) -> None:
    write_pem_key(new_key(), tmp_path / "key.pem")
    path = config(
        tmp_path,
        f'[receiver]\nsecret = "{GOOD_SECRET}"\n{ALTINN}'
        '[[pipelines]]\ntypes = ["*"]\nhandlers = ["fetch_correspondence", "forward_http"]\n'
        '[handlers.forward_http]\nurl = "https://case.example/in"\ntimeout = "soon"\n',
    )
    line = 'config error: handlers.forward_http.timeout: expected a duration such as "30s", "5m" or "48h", got \'soon\''
    served = run_cli("serve", "--config", str(path))
    assert (served.returncode, only_line(served.stderr)) == (2, line)
    code, stdout, stderr = validate(path)
    assert (code, stdout, only_line(stderr)) == (2, "", line)
    checked = run_cli("check", "--json", "--config", str(path))
    steps = {step["name"]: step for step in json.loads(checked.stdout)["steps"]}
    assert checked.returncode == 1
    assert steps["config"]["status"] == "failed"
    assert steps["config"]["detail"].startswith(line.removeprefix("config error: "))


def test_validate_passes_a_good_config_with_one_line(tmp_path: Path) -> None:
    write_pem_key(new_key(), tmp_path / "key.pem")
    path = config(tmp_path, f'[receiver]\nsecret = "{GOOD_SECRET}"\n{ALTINN}')
    code, stdout, stderr = validate(path)
    assert (code, stderr) == (0, "")
    assert (
        only_line(stdout)
        == f"{path}: valid (2 pipeline(s), 2 handler(s), Maskinporten key signs with kid receiver-2026)"
    )


def test_validate_warns_when_the_default_pipelines_can_only_store(tmp_path: Path) -> None:
    code, stdout, stderr = validate(config(tmp_path, f'[receiver]\nsecret = "{GOOD_SECRET}"\n'))
    assert (code, only_line(stdout)) == (0, f"{tmp_path / 'receiver.toml'}: valid (2 pipeline(s), 1 handler(s))")
    assert only_line(stderr).startswith("warning: events are stored but not fetched: altinn.environment: is required")


def test_config_show_masks_the_console_token_and_says_when_the_console_is_off(tmp_path: Path) -> None:
    token = "console-token-nobody-guesses-0123456789"
    receiver = f'[receiver]\nsecret = "{GOOD_SECRET}"\n'
    on = config(tmp_path, receiver + '[console]\ntoken = "${CONSOLE_TOKEN}"\nport = 0\n')
    shown = run_cli("config", "show", "--config", str(on), env={"CONSOLE_TOKEN": token})
    assert shown.returncode == 0 and token not in shown.stdout
    assert tomllib.loads(shown.stdout)["console"] == {
        "token": "***", "host": "127.0.0.1", "port": 0, "read_only": False, "session_lifetime": "8h"
    }  # fmt: skip
    off = config(tmp_path, receiver)
    shown = run_cli("config", "show", "--config", str(off))
    assert shown.returncode == 0 and "# [console] is not set" in shown.stdout
    assert "console" not in tomllib.loads(shown.stdout)
    as_json = run_cli("config", "show", "--json", "--config", str(off))
    assert json.loads(as_json.stdout)["console"] is None
