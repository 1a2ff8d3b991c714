"""The broker handlers' options are checked at startup like every config key (exit status 2 and one line naming the
key), and a pipeline that names one whose optional extra is not installed says which extra to install."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from receiver.config import ConfigError, load_config
from receiver.worker.pipelines import load_pipelines
from tests.broker_support import amqp_url, nats_url
from tests.ingest_support import config_text, run_cli
from tests.pipeline_support import pipelines_toml
from tests.support import REPO, write_config

AMQP = {"use": "forward_amqp", "url": amqp_url(), "routing_key": "altinn.{type}"}
NATS = {"use": "forward_nats", "url": nats_url(), "subject": "altinn.{type}"}


def forwarding_config(tmp_path: Path, options: dict[str, Any]) -> Path:
    text = config_text(tmp_path / "r.db") + pipelines_toml((["*"], ["forward"]), handlers={"forward": options})
    return write_config(tmp_path / "receiver.toml", text)


@pytest.mark.parametrize(
    ("options", "key", "problem"),
    [
        ({**AMQP, "declare": True}, "declare", 'cannot declare the default exchange (exchange = "")'),
        ({**AMQP, "routing_key": "altinn.{kind}"}, "routing_key", "names {kind}: a template may use {type}, "),
        ({**AMQP, "routing_key": "altinn.{type"}, "routing_key", "is not a template: "),
        ({**AMQP, "url": "http://rabbitmq:5672/"}, "url", "must be an amqp:// or amqps:// URL with a host, got"),
        ({**AMQP, "timeout": "0s"}, "timeout", "must be more than zero"),
        ({**NATS, "subject": "altinn.*.{type}"}, "subject", "'altinn.*.x' is not a subject to publish to"),
        ({**NATS, "subject": "altinn.{type!r}"}, "subject", "names {type}: a template may use"),
        ({**NATS, "stream": "altinn.events"}, "stream", "must be a stream name"),
        (
            {**NATS, "url": amqp_url()},
            "url",
            "must be a nats:// or tls:// URL with a host, got 'amqp://127.0.0.1:5672/'",
        ),
    ],
)
def test_a_wrong_option_is_a_config_error_naming_it(
    tmp_path: Path, options: dict[str, Any], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_pipelines(load_config(forwarding_config(tmp_path, options)))
    assert caught.value.key == f"handlers.forward.{key}"
    assert caught.value.problem.startswith(problem), caught.value.problem
    assert "guest:guest" not in caught.value.problem


def test_serve_and_config_validate_stop_at_a_wrong_option_with_one_line(tmp_path: Path) -> None:
    checked = run_cli("config", "validate", "--config", str(forwarding_config(tmp_path, {**AMQP, "declare": True})))
    assert (checked.returncode, checked.stderr) == (
        2,
        'config error: handlers.forward.declare: cannot declare the default exchange (exchange = ""): name an exchange,'
        " or leave it out\n",
    )


def without(modules: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    """`altinn-receiver ARGS` in a Python that cannot import `modules`, as if their extras were not installed."""
    script = f"import runpy, sys; sys.modules.update(dict.fromkeys({modules!r})); sys.argv[0] = 'altinn-receiver'; "
    script += "runpy.run_module('receiver', run_name='__main__')"
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=REPO, timeout=60)


def test_a_handler_whose_extra_is_not_installed_names_the_extra(tmp_path: Path) -> None:
    checked = without(("aio_pika",), "config", "validate", "--config", str(forwarding_config(tmp_path, AMQP)))
    listed = without(("aio_pika", "nats"), "handlers", "list", "--json")
    assert (checked.returncode, checked.stderr) == (
        2,
        "config error: handlers.forward.use: handler 'forward_amqp' needs the optional extra 'amqp', which is not"
        " installed: pip install 'altinn-receiver[amqp]'\n",
    )
    assert listed.returncode == 0, "an extra left out is a choice, not a broken installation"
    extras = {entry["name"]: entry["extra"] for entry in map(json.loads, listed.stdout.splitlines())}
    assert (extras["forward_amqp"], extras["forward_nats"], extras["forward_http"]) == ("amqp", "nats", "")
