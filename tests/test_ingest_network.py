"""`trusted_networks` and `forwarded_allow_ips`: 403 outside; X-Forwarded-For believed only from proxies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ingest_support import inbox_rows, make_config, new_event, push, running_app, webhook


def answer(tmp_path: Path, forwarded_for: str | None = None, *, code: str | None = None, **receiver: Any) -> int:
    config = make_config(tmp_path, **receiver)
    event = new_event()
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    with running_app(config) as server, httpx.Client(timeout=10) as client:
        url = webhook(server.url) if code is None else webhook(server.url, code)
        status = push(client, url, event, **headers).status_code
    stored = bool(inbox_rows(config.store.path, "id = ?", event["id"]))
    assert stored == (status == 200)
    return status


def test_a_source_outside_trusted_networks_gets_403(tmp_path: Path) -> None:
    assert answer(tmp_path, trusted_networks=["10.0.0.0/8", "20.100.46.139/32"]) == 403


def test_a_source_inside_trusted_networks_is_accepted(tmp_path: Path) -> None:
    assert answer(tmp_path, trusted_networks=["127.0.0.0/8"]) == 200


def test_the_network_check_comes_before_the_code(tmp_path: Path) -> None:
    assert answer(tmp_path, code="wrong", trusted_networks=["10.0.0.0/8"]) == 403


def test_x_forwarded_for_is_ignored_from_a_peer_that_is_not_an_allowed_proxy(tmp_path: Path) -> None:
    assert answer(tmp_path, "10.1.2.3", trusted_networks=["10.0.0.0/8"]) == 403


@pytest.mark.parametrize("proxies", [["127.0.0.1"], ["127.0.0.0/8"], ["*"]])
def test_x_forwarded_for_from_an_allowed_proxy_is_believed(tmp_path: Path, proxies: list[str]) -> None:
    assert answer(tmp_path, "10.1.2.3", trusted_networks=["10.0.0.0/8"], forwarded_allow_ips=proxies) == 200


def test_the_nearest_untrusted_hop_decides_not_a_spoofed_first_entry(tmp_path: Path) -> None:
    # The client wrote "10.1.2.3" itself; the proxy appended the real source 192.0.2.7.
    status = answer(tmp_path, "10.1.2.3, 192.0.2.7", trusted_networks=["10.0.0.0/8"], forwarded_allow_ips=["127.0.0.1"])
    assert status == 403


def test_a_chain_of_trusted_proxies_is_walked_to_the_source(tmp_path: Path) -> None:
    status = answer(
        tmp_path,
        "10.1.2.3, 172.16.0.5",
        trusted_networks=["10.0.0.0/8"],
        forwarded_allow_ips=["127.0.0.1", "172.16.0.0/12"],
    )
    assert status == 200
