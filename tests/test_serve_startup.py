"""`altinn-receiver serve` when it cannot start: config errors (a handler's options and the Maskinporten key included)
exit 2 with one line naming the key; a store or port that cannot be used exits 1 with one line saying why; neither
leaves a traceback in the log. Ctrl-C drains and exits 130."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from receiver.server_thread import free_port
from tests.altinn_support import new_key, write_pem_key
from tests.ingest_support import ServeProcess, config_text, run_cli
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


def no_traceback(result: subprocess.CompletedProcess[str]) -> bool:
    return "Traceback" not in result.stdout + result.stderr and "Exception" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("folder", "why"),
    [
        # /sys refuses new folders to everyone, root too (here: EPERM; as a user EACCES): a permission problem
        # that root cannot show with chmod.
        (Path("/sys/altinn-receiver-test"), ""),
        (Path("a-file/data"), "Not a directory"),
    ],
)
def test_a_store_folder_that_cannot_be_created_exits_1_with_one_line_and_no_traceback(
    tmp_path: Path, folder: Path, why: str
) -> None:
    (tmp_path / "a-file").write_text("a file where the folder should be")
    folder = folder if folder.is_absolute() else tmp_path / folder
    config = write_config(tmp_path / "receiver.toml", config_text(folder / "receiver.db", free_port()))
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: cannot create the store's folder {folder}: {why}")
    assert line.endswith("(check store.path, and that the user the receiver runs as may write there)")
    assert no_traceback(result)


def test_a_port_in_use_exits_1_with_one_line_and_no_traceback_in_the_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "receiver.toml", config_text(tmp_path / "r.db", port))
        result = run_cli("serve", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: address already in use (another process listens there: stop "
        "it, or change [receiver] port)"
    ]
    assert no_traceback(result)
    assert not (tmp_path / "r.db").exists() or "started" not in result.stdout, "no service started before the bind"


def key_config(tmp_path: Path, key_file: Path, password: str = "") -> Path:
    secret = "a-webhook-code-of-16+"
    return write_config(
        tmp_path / "receiver.toml",
        f'[receiver]\nsecret = "{secret}"\nport = {free_port()}\n[store]\npath = "{tmp_path / "r.db"}"\n'
        '[altinn]\nenvironment = "tt02"\n[maskinporten]\nclient_id = "client"\nkid = "k"\n'
        f'private_key_file = "{key_file}"\ncertificate_password = "{password}"\n'
        'scopes = ["altinn:correspondence.write", "altinn:events.subscribe", "altinn:serviceowner"]\n',
    )


KEY = new_key()
PUBLIC_PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


KEY_FILE, PASSWORD = "maskinporten.private_key_file: ", "maskinporten.certificate_password: "
PEM_BEGIN = "(-----BEGIN PRIVATE KEY-----)"


@pytest.mark.parametrize(
    ("case", "password", "line"),
    [
        ("garbage", "", KEY_FILE + f"{{key}} holds no PEM private key {PEM_BEGIN} nor a JWK"),
        ("empty", "", KEY_FILE + f"{{key}} is empty: it must hold the private key {PEM_BEGIN}"),
        ("public", "", KEY_FILE + "{key} holds a public key: give the private key that signs "
                                  "(Digdir holds the public one)"),
        ("encrypted", "", PASSWORD + "is required: the private key in {key} is encrypted "
                                     "(set certificate_password or its _file)"),
        ("encrypted", "not-the-password", PASSWORD + "does not decrypt the private key in {key}"),
        # As root a chmod 000 file is still readable: a folder in its place takes the same branch (the read fails).
        ("unreadable", "", KEY_FILE + "cannot read {key}: Is a directory"),
    ],
)  # fmt: skip
def test_an_unusable_maskinporten_key_stops_serve_with_exit_2_and_one_line(
    tmp_path: Path, case: str, password: str, line: str
) -> None:
    key = tmp_path / "key.pem"
    if case == "garbage":
        key.write_text("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ not PEM")
    elif case == "empty":
        key.write_text("")
    elif case == "public":
        key.write_bytes(PUBLIC_PEM)
    elif case == "encrypted":
        write_pem_key(KEY, key, password="the-password")
    else:
        key.mkdir()
    result = run_cli("serve", "--config", str(key_config(tmp_path, key, password)))
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["config error: " + line.format(key=key)]
    assert password not in result.stderr or not password
    assert no_traceback(result)
    assert not (tmp_path / "r.db").exists(), "it stopped before the store was made"


def test_ctrl_c_drains_and_exits_130(tmp_path: Path) -> None:
    with ServeProcess(tmp_path) as serve:
        serve.signal(signal.SIGINT)
        assert serve.wait() == 130
    assert any(line["msg"] == "stopped" for line in serve.log_lines())


def test_serve_help_explains_the_endpoints_and_shutdown() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for word in ("--config", "/readyz", "/metrics", "SIGTERM", "shutdown_timeout"):
        assert word in result.stdout
