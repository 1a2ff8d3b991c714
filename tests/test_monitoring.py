"""The shipped monitoring: deploy/prometheus/alerts.yaml passes `promtool check rules` and its unit tests (every alert
fires on a synthetic series), the PrometheusRule is generated from it, the ServiceMonitor finds the Service, the
Grafana dashboard's queries parse, and the rules and the dashboard name only metrics that a real `serve` exports,
whose scrape passes `promtool check metrics`.

The scrape is of `serve` as a process, subscribed to the simulator, after a push and its dispatch (handler steps and
Altinn calls) and a catch-up run, so that the metrics with labels have their series."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from altinn_sim import SimSettings, running_simulator
from receiver.config import SubscriptionConfig
from receiver.onboarding.demo import SCOPES, ReceiverSetup, register_identity
from tests.dispatch_support import FAST_RETRIES, RECIPIENT_ORG, RESOURCE, SENDER_ORG, query
from tests.ingest_support import ServeProcess
from tests.support import REPO, wait_until

PROMETHEUS = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "altinn-receiver.json"
MONITORING = REPO / "deploy" / "kubernetes" / "monitoring"
STORE_LEVEL = (
    "altinn_receiver_oldest_unprocessed_age_seconds",
    "altinn_receiver_inbox_events",
    "altinn_receiver_last_push_age_seconds",
    "altinn_receiver_last_catchup_age_seconds",
    "altinn_receiver_subscription_validated",
    "altinn_receiver_sync_lease_held",
)
# What Grafana puts in for its variables when it runs a query: any job, a rate window.
DASHBOARD_VARIABLES = {"$__rate_interval": "5m", "$job": ".+"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: `apt-get install prometheus` (Debian's package has it; .ci/run does it)"
        )
    return found


def run(*command: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, input=stdin, cwd=cwd, timeout=120)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: its identifiers less functions, keywords, label names in
    matchers and groupings, strings, durations and numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    functions = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", text))
    return set(re.findall(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text)) - functions - KEYWORDS


def test_metric_names_finds_the_metrics_of_an_expression_and_nothing_else() -> None:
    expr = 'sum by (le, api) (rate(foo_bucket{status!~"2..", job=~"a b"}[5m])) > 2 * 3600 and on () bar:x offset 1h'
    assert metric_names(expr) == {"foo_bucket", "bar:x"}


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard, Grafana's variables put in."""
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in DASHBOARD_VARIABLES.items():
                expr = expr.replace(variable, value)
            found.append((panel["title"], expr))
    return found


def test_the_alert_rules_pass_promtool_check_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_every_alert_fires_in_the_promtool_unit_tests(promtool: str) -> None:
    result = run(promtool, "test", "rules", "alerts.test.yaml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yaml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == {rule["alert"] for rule in alert_rules()}


def test_every_alert_waits_has_a_severity_and_takes_store_level_gauges_once_per_store() -> None:
    for rule in alert_rules():
        assert rule["for"] and rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"], rule["alert"]
        for gauge in STORE_LEVEL:
            for found in re.finditer(rf"\b{gauge}\b", rule["expr"]):
                before = rule["expr"][: found.start()].rstrip()
                assert before.endswith("max without (instance, pod) ("), f"{rule['alert']}: {gauge} not under max()"


def test_the_prometheusrule_is_generated_from_the_rules_file_and_a_stale_one_is_caught(tmp_path: Path) -> None:
    check = [sys.executable, "-m", "tools.monitoring", "--check"]
    result = run(*check, cwd=REPO)
    assert result.returncode == 0, result.stderr
    generated = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert generated["kind"] == "PrometheusRule"
    assert generated["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]
    changed = tmp_path / "alerts.yaml"
    changed.write_text(ALERTS.read_text().replace("for: 30m", "for: 31m"))
    stale = run(*check, "--rules", str(changed), cwd=REPO)
    assert stale.returncode == 1
    assert stale.stderr.strip().endswith("is not up to date with " + str(changed) + ": run `make monitoring`")


def test_the_servicemonitor_scrapes_the_receivers_service_on_its_port() -> None:
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    service = yaml.safe_load((REPO / "deploy" / "kubernetes" / "base" / "service.yaml").read_text())
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    listed = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in MONITORING.glob("*.yaml") if p.name != "kustomization.yaml")


def test_every_dashboard_query_parses(promtool: str, tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) > 20 and not [expr for _, expr in queries if "$" in expr], "an unknown variable"
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, (_, expr) in enumerate(queries)
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The text of /metrics of `serve` after a push, its dispatch and a catch-up run."""
    tmp_path = tmp_path_factory.mktemp("scrape")
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as sim:
        sim.set_resource_owner(RESOURCE, SENDER_ORG)
        identity = register_identity(sim, tmp_path, org=SENDER_ORG, scopes=SCOPES)
        setup = ReceiverSetup(
            sim.url, identity, tmp_path / "receiver.db", [SubscriptionConfig(RESOURCE)], dispatch=FAST_RETRIES
        )
        serve = ServeProcess(tmp_path)  # its process handling, with the simulator's config
        setup.write(serve.config)
        serve.port = setup.port
        with serve:
            wait_until(lambda: httpx.get(f"{serve.url}/readyz").json()["services"]["subscriptions"].get("state")
                       == "validated", message="the subscription to be validated")  # fmt: skip
            sim.send_correspondence(RESOURCE, RECIPIENT_ORG)
            wait_until(lambda: query(setup.store, "SELECT 1 FROM inbox WHERE status = 'done' AND channel = 'push'"),
                       message="a pushed event to be dispatched")  # fmt: skip
            yield httpx.get(f"{serve.url}/metrics", timeout=10).text


def exported(text: str) -> set[str]:
    """Every metric name the scrape has a series of, or declares (a labelled counter before its first count)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def test_a_real_scrape_passes_promtool_check_metrics(promtool: str, scrape: str) -> None:
    result = run(promtool, "check", "metrics", stdin=scrape)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_a_real_scrape_has_the_deeper_metrics_with_their_labels(scrape: str) -> None:
    samples = {(s.name, tuple(sorted(s.labels.items())))
               for family in text_string_to_metric_families(scrape) for s in family.samples}  # fmt: skip
    names = {name for name, _ in samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"} <= names
    assert ("altinn_receiver_build_info", (("version", "0.1.0"),)) in samples
    assert ("altinn_receiver_step_total", (("handler", "fetch_correspondence"), ("outcome", "ok"))) in samples
    assert ("altinn_receiver_step_seconds_count", (("handler", "store"),)) in samples
    assert ("altinn_receiver_altinn_requests_total", (("api", "correspondence"), ("status", "200"))) in samples
    assert ("altinn_receiver_altinn_request_seconds_count", (("api", "maskinporten"),)) in samples
    assert ("altinn_receiver_token_grants_total", (("kind", "altinn"),)) in samples
    assert ("altinn_receiver_store_writable", ()) in samples
    done = ("handler", "store"), ("status", "done"), ("type", "no.altinn.correspondence.correspondence*")
    assert ("altinn_receiver_dispatch_outcomes_total", done) in samples
    lag = ("resource", RESOURCE), ("subject", ""), ("type", "")
    assert ("altinn_receiver_catchup_lag_seconds", lag) in samples


def test_the_rules_and_the_dashboard_name_only_metrics_the_receiver_exports(scrape: str) -> None:
    known = exported(scrape)
    named = [(rule["alert"], name) for rule in alert_rules() for name in metric_names(rule["expr"])]
    named += [(title, name) for title, expr in dashboard_queries() for name in metric_names(expr)]
    assert {name for _, name in named} >= {"altinn_receiver_step_total", "altinn_receiver_catchup_lag_seconds"}
    assert [(where, name) for where, name in named if name not in known] == []
