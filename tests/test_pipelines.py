"""Pipelines from the config: the defaults per role, glob matching, `use =` instances, and every handler problem
stopping startup (`altinn-receiver serve` exits 2 with one line naming the key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.config import Config, ConfigError, load_config
from receiver.worker.pipelines import load_pipelines
from tests.ingest_support import config_text, run_cli
from tests.support import write_config

ALTINN = """
[altinn]
platform_url = "https://platform.tt02.altinn.no"
role = "{role}"

[maskinporten]
issuer = "https://test.maskinporten.no/"
client_id = "client"
private_key_file = "{key}"
scopes = ["altinn:correspondence.read", "altinn:correspondence.write", "altinn:events.subscribe", "altinn:serviceowner"]
"""


def config(tmp_path: Path, extra: str = "", *, altinn: bool = True, role: str = "service-owner") -> Config:
    key = tmp_path / "key.pem"
    key.write_text("not read by these tests")
    text = config_text(tmp_path / "r.db") + (ALTINN.format(role=role, key=key) if altinn else "") + extra
    return load_config(write_config(tmp_path / "receiver.toml", text))


def handler_names(cfg: Config, event_type: str) -> list[str] | None:
    pipeline = load_pipelines(cfg).for_type(event_type)
    return None if pipeline is None else [step.name for step in pipeline.steps]


def test_service_owner_defaults_fetch_and_store_correspondence_events_and_store_the_rest(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    fetch_and_store = ["fetch_correspondence", "store"]
    assert handler_names(cfg, "no.altinn.correspondence.correspondencereceiverread") == fetch_and_store
    assert handler_names(cfg, "no.altinn.correspondence.correspondencepublished") == fetch_and_store
    assert handler_names(cfg, "no.altinn.correspondence.attachmentpublished") == ["store"]
    assert handler_names(cfg, "no.altinn.correspondence.notificationcreated") == ["store"]
    assert handler_names(cfg, "dialogporten.dialog.updated.v1") is None


def test_recipient_defaults_download_published_ones_and_fetch_the_due_date_events(tmp_path: Path) -> None:
    cfg = config(tmp_path, role="recipient")
    published = "no.altinn.correspondence.correspondencepublished"
    assert handler_names(cfg, published) == ["fetch_correspondence", "download_attachments", "store"]
    assert handler_names(cfg, "no.altinn.correspondence.correspondencereceiverneverread") == [
        "fetch_correspondence",
        "store",
    ]
    assert handler_names(cfg, "no.altinn.correspondence.correspondencereceiverread") is None


def test_without_altinn_configured_the_defaults_only_store_and_say_why(tmp_path: Path) -> None:
    pipelines = load_pipelines(config(tmp_path, altinn=False))
    assert {step for p in pipelines.pipelines for step in (s.name for s in p.steps)} == {"store"}
    assert not pipelines.uses_altinn
    assert "not fetched" in pipelines.warning and "altinn.environment" in pipelines.warning


def test_the_first_matching_pipeline_wins_and_use_makes_a_second_instance_with_its_own_options(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """
[[pipelines]]
types = ["no.altinn.correspondence.correspondencepublished"]
handlers = ["fetch_correspondence", "archive", "case"]

[[pipelines]]
types = ["no.altinn.correspondence.*"]
handlers = ["log"]

[handlers.archive]
use = "forward_http"
url = "https://archive.example/in"

[handlers.case]
use = "forward_http"
url = "https://case.example/in"
mode = "binary"
timeout = "2m"
""",
    )
    pipelines = load_pipelines(cfg)
    assert handler_names(cfg, "no.altinn.correspondence.correspondencepublished") == [
        "fetch_correspondence",
        "archive",
        "case",
    ]
    assert handler_names(cfg, "no.altinn.correspondence.correspondencereceiverread") == ["log"]
    archive, case = pipelines.steps["archive"], pipelines.steps["case"]
    assert archive.handler is not case.handler
    assert (archive.options.url, archive.options.mode, archive.options.timeout) == (
        "https://archive.example/in",
        "structured",
        10.0,
    )
    assert (case.options.url, case.options.mode, case.options.timeout) == ("https://case.example/in", "binary", 120.0)


def test_a_dotted_path_handler_with_a_path_option_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """
[[pipelines]]
types = ["*"]
handlers = ["tests.dispatch_plugins:Recorder"]

[handlers."tests.dispatch_plugins:Recorder"]
path = "ran.jsonl"
seconds = 0.5
""",
        altinn=False,
    )
    step = load_pipelines(cfg).steps["tests.dispatch_plugins:Recorder"]
    assert (step.options.path, step.options.seconds) == (tmp_path / "ran.jsonl", 0.5)


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ('[[pipelines]]\ntypes = ["*"]\nhandlers = ["store", "nonesuch"]\n', "pipelines[0].handlers[1]", "unknown"),
        ('[[pipelines]]\ntypes = ["*"]\nhandlers = ["x"]\n[handlers.x]\nuse = "nope"\n', "handlers.x.use", "unknown"),
        ('[[pipelines]]\ntypes = ["*"]\nhandlers = ["forward_http"]\n', "handlers.forward_http.url", "required"),
        (
            '[[pipelines]]\ntypes = ["*"]\nhandlers = ["forward_http"]\n[handlers.forward_http]\n'
            'url = "https://a.example"\ntimeout = "soon"\n',
            "handlers.forward_http.timeout",
            "duration",
        ),
        (
            '[[pipelines]]\ntypes = ["*"]\nhandlers = ["forward_http"]\n[handlers.forward_http]\n'
            'url = "ftp://a.example"\n',
            "handlers.forward_http.url",
            "https",
        ),
        (
            '[[pipelines]]\ntypes = ["*"]\nhandlers = ["forward_http"]\n[handlers.forward_http]\n'
            'url = "https://a.example"\nmode = "batch"\n',
            "handlers.forward_http.mode",
            "structured",
        ),
        ("[handlers.store]\nretries = 3\n", "handlers.store.retries", "takes no options"),
        ("[handlers.fetch_correspondence]\nview = 2\n", "handlers.fetch_correspondence.view", "one of"),
        (
            "[handlers.fetch_correspondence]\nviews = 'details'\n",
            "handlers.fetch_correspondence.views",
            "unknown key in the options of handler 'fetch_correspondence'",
        ),
        ('[handlers.download_attachments]\ndir = "x"\n', "handlers.download_attachments", "not used by any pipeline"),
        ('[[pipelines]]\ntypes = ["*"]\nhandlers = ["m:"]\n', "pipelines[0].handlers[0]", "cannot import"),
        ('[[pipelines]]\ntypes = ["*"]\nhandlers = ["json:nope"]\n', "pipelines[0].handlers[0]", "has no"),
    ],
)
def test_handler_problems_name_the_key(tmp_path: Path, extra: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_pipelines(config(tmp_path, extra))
    assert caught.value.key == key and words in caught.value.problem


def test_a_pipeline_that_calls_altinn_needs_altinn_configured(tmp_path: Path) -> None:
    extra = '[[pipelines]]\ntypes = ["*"]\nhandlers = ["fetch_correspondence", "store"]\n'
    with pytest.raises(ConfigError) as caught:
        load_pipelines(config(tmp_path, extra, altinn=False))
    assert caught.value.key == "altinn.environment"


def test_serve_with_an_unknown_handler_exits_2_with_one_line_naming_the_key(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[[pipelines]]\ntypes = ["*"]\nhandlers = ["store", "archive_it"]\n', altinn=False)
    result = run_cli("serve", "--config", str(cfg.source))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("config error: pipelines[0].handlers[1]: unknown handler 'archive_it'")
