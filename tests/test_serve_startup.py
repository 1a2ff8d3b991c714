"""`altinn-receiver serve` when it cannot start: config errors exit 2 with one line naming the key; a store or port
that cannot be used exits 1 saying why."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from receiver.server_thread import free_port
from tests.ingest_support import config_text, run_cli
from tests.support import write_config


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[receiver]\nsecret = "a-webhook-code-of-16+"\nport = "eighty"\n', "receiver.port"),
        ("[receiver]\nport = 8080\n", "receiver.secret"),
        ('[receiver]\nsecret = "${NO_SUCH_VARIABLE_FOR_SURE}"\n', "receiver.secret"),
        ('[receiver]\nsecret = "a-webhook-code-of-16+"\nshutdown_timeout = "soon"\n', "receiver.shutdown_timeout"),
        (
            '[receiver]\nsecret = "a-webhook-code-of-16+"\ntrusted_networks = ["not-a-network"]\n',
            "receiver.trusted_networks[0]",
        ),
        ('[receiver]\nsecret = "a-webhook-code-of-16+"\nmax_body_bytes = 10\n', "receiver.max_body_bytes"),
        ('[receiver]\nsecret = "a-webhook-code-of-16+"\nprot = 1\n', "receiver.prot"),
    ],
)
def test_config_errors_exit_2_with_one_line_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    config = write_config(tmp_path / "receiver.toml", text)
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert key in lines[0]


def test_a_role_whose_client_lacks_a_scope_it_needs_exits_2_naming_the_scope(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_text("not read: the config stops first")
    config = write_config(
        tmp_path / "receiver.toml",
        '[receiver]\nsecret = "a-webhook-code-of-16+"\n[altinn]\nenvironment = "tt02"\nrole = "recipient"\n'
        f'[maskinporten]\nclient_id = "c"\nprivate_key_file = "{key}"\nscopes = ["altinn:correspondence.read"]\n',
    )
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "config error: maskinporten.scopes: lacks altinn:events.subscribe, which [altinn] role = 'recipient' needs "
        "for the Events calls (subscriptions, pulling events): ask Altinn for it, add it to the Maskinporten client, "
        "then list it here (see docs/authentication.md)"
    ]


def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("serve", "--config", str(tmp_path / "nowhere.toml"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_a_store_that_cannot_be_opened_exits_1_saying_why(tmp_path: Path) -> None:
    store = tmp_path / "a-directory"
    store.mkdir()
    config = write_config(tmp_path / "receiver.toml", config_text(store, free_port()))
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot open store")
    assert str(store) in result.stderr


def test_a_port_in_use_exits_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "receiver.toml", config_text(tmp_path / "r.db", port))
        result = run_cli("serve", "--config", str(config))
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr


def test_serve_help_explains_the_endpoints_and_shutdown() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for word in ("--config", "/readyz", "/metrics", "SIGTERM", "shutdown_timeout"):
        assert word in result.stdout
