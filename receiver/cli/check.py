"""`altinn-receiver check`: walk the chain from config to webhook and say, step by step, what works.

Steps, in order: config, key, maskinporten (each scope), exchange, correspondence-api, subscriptions, webhook.
Each is `passed`, `failed` (with what to do) or `not checked` (with why). Exit 1 when any step failed.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import click
import httpx

from receiver.altinn import AltinnClients, AltinnError, PermanentError
from receiver.altinn.clients import require_altinn
from receiver.altinn.keys import SigningKey, load_signing_key
from receiver.cli.common import config_option, echo_json, json_option
from receiver.config import Config, ConfigError, load_config
from receiver.observability.logs import add_secrets, redact
from receiver.onboarding.steps import CHECK_GUIDE_STEPS, grant_cause, guide_label
from receiver.scopes import READ_SCOPE, WRITE_SCOPE
from receiver.sync.subscriptions import compare, endpoint_url, shown
from receiver.text import printable
from receiver.validation import secrets_in
from receiver.web.cloudevent import VALIDATION_TYPE
from receiver.worker.pipelines import load_pipelines

PASSED, FAILED, NOT_CHECKED = "passed", "failed", "not checked"
LIST_ROLES = {"service-owner": "Sender", "recipient": "Recipient"}
WEBHOOK_TIMEOUT = 15.0


@dataclass(frozen=True)
class StepResult:
    name: str
    status: str
    detail: str


class Checks:
    """Runs the steps in order; a step whose prerequisite failed is `not checked`, naming that step."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self.results: list[StepResult] = []
        self.config: Config | None = None
        self.key: SigningKey | None = None

    def record(self, name: str, status: str, detail: str) -> None:
        self.results.append(StepResult(name, status, redact(detail)))

    def passed(self, name: str) -> bool:
        return any(r.name == name and r.status == PASSED for r in self.results)

    def can_check(self, name: str, needed: object, why_not: str) -> bool:
        """True if `needed` is there; otherwise records `name` as not checked, saying `why_not`."""
        if not needed:
            self.record(name, NOT_CHECKED, why_not)
        return bool(needed)

    async def run(self) -> list[StepResult]:
        self.check_config()
        self.check_key()
        config = self.config
        if config is not None and self.key is not None:
            async with AltinnClients.from_config(config) as clients:
                await self.check_maskinporten(clients, config)
                await self.after("maskinporten", "exchange", lambda: self.check_exchange(clients))
                await self.after("exchange", "correspondence-api", lambda: self.check_correspondence(clients, config))
                await self.after("exchange", "subscriptions", lambda: self.check_subscriptions(clients, config))
        else:
            for name in ("maskinporten", "exchange", "correspondence-api", "subscriptions"):
                self.record(name, NOT_CHECKED, "needs a signing key (see the key step)")
        await self.check_webhook()
        return self.results

    async def after(self, prerequisite: str, name: str, step: Callable[[], Awaitable[None]]) -> None:
        if not self.passed(prerequisite):
            self.record(name, NOT_CHECKED, f"needs the {prerequisite} step to pass first")
            return
        try:
            await step()
        except AltinnError as error:
            self.record(name, FAILED, str(error))

    def check_config(self) -> None:
        """What `config validate` checks, but the key, which is the next step's."""
        try:
            config = load_config(self.config_path)
            add_secrets(secrets_in(config))
            require_altinn(config)
            add_secrets(load_pipelines(config).secrets())
        except ConfigError as error:
            self.record("config", FAILED, f"{error} (fix the config file and run check again)")
            return
        self.config = config
        where = config.altinn.environment or config.altinn.platform_url
        self.record("config", PASSED, f"{config.source}: {where}, Maskinporten client {config.maskinporten.client_id}")

    def check_key(self) -> None:
        if self.config is None:
            self.record("key", NOT_CHECKED, "needs the config step to pass first")
            return
        try:
            self.key = load_signing_key(self.config.maskinporten)
        except ConfigError as error:
            self.record("key", FAILED, f"{error} (fix the key file or its settings in [maskinporten])")
            return
        bits = self.key.private_key.key_size
        self.record("key", PASSED, f"RSA {bits}-bit key, signs with {self.key.description}")

    async def check_maskinporten(self, clients: AltinnClients, config: Config) -> None:
        scopes = config.maskinporten.scopes
        if not scopes:
            self.record("maskinporten", FAILED, "[maskinporten] scopes is empty: list the scopes the client holds")
            return
        try:
            await clients.tokens.maskinporten(scopes)
        except PermanentError as error:
            if error.error_code != "invalid_scope" or len(scopes) == 1:
                assert self.key is not None
                cause = grant_cause(error.error_code, error.title, kid=self.key.kid, scopes=scopes)
                self.record("maskinporten", FAILED, f"{error} — likely cause: {cause}")
                return
            refused = [s for s in scopes if not await _granted(clients, s)]
            self.record(
                "maskinporten",
                FAILED,
                f"missing scope(s): {' '.join(refused) or '(each alone is granted; together refused)'} — ask Altinn "
                "for them and add them to the client in Digdir's self-service portal",
            )
            return
        except AltinnError as error:
            self.record("maskinporten", FAILED, f"{error} (Maskinporten did not answer; try again later)")
            return
        granted = f"granted: {' '.join(scopes)} at {config.maskinporten.issuer}"
        self.record("maskinporten", PASSED, granted + write_scope_warning(config))

    async def check_exchange(self, clients: AltinnClients) -> None:
        """One exchange per scope set the receiver uses, as it makes them."""
        tokens = {purpose: await clients.tokens.altinn(scopes) for purpose, scopes in clients.scope_sets.items()}
        org = next((t.claims["urn:altinn:org"] for t in tokens.values() if t.claims.get("urn:altinn:org")), None)
        org = org or next(iter(tokens.values())).claims.get("urn:altinn:orgNumber") or "?"
        sets = "; ".join(f"{purpose}: {' '.join(token.scopes)}" for purpose, token in tokens.items())
        lifetime = round(min(token.lifetime for token in tokens.values()))
        self.record("exchange", PASSED, f"Altinn tokens for {org}, one per scope set ({sets}), valid for {lifetime}s")

    async def check_correspondence(self, clients: AltinnClients, config: Config) -> None:
        why_not = "no [[subscriptions]] resource to list correspondences of"
        if not self.can_check("correspondence-api", config.subscriptions, why_not):
            return
        resource = config.subscriptions[0].resource
        role = LIST_ROLES[config.altinn.role]
        ids = await clients.correspondence.list_ids(resource, role=role)
        self.record("correspondence-api", PASSED, f"listed {len(ids)} correspondence(s) of {resource} as {role}")

    async def check_subscriptions(self, clients: AltinnClients, config: Config) -> None:
        if not (
            self.can_check("subscriptions", config.subscriptions, "no [[subscriptions]] in the config")
            and self.can_check(
                "subscriptions",
                config.receiver.public_url,
                "[receiver] public_url is not set, so no endpoint to look for",
            )
        ):
            return
        views = compare(config.subscriptions, await clients.events.list_subscriptions(), config.receiver, {})
        problems = []
        for view in views:
            if view.role == "missing":
                problems.append(f"{view.key.resource} is not registered (`altinn-receiver serve` registers it)")
            elif view.role == "current" and not view.validated:
                problems.append(
                    f"{view.key.resource} (id {view.id}) is not validated: Altinn could not reach the webhook "
                    "(see the webhook step)"
                )
        if problems:
            self.record("subscriptions", FAILED, "; ".join(problems))
            return
        ids = ", ".join(str(v.id) for v in views if v.role == "current")
        self.record("subscriptions", PASSED, f"{len(config.subscriptions)} registered and validated (id {ids})")

    async def check_webhook(self) -> None:
        if self.config is None:
            self.record("webhook", NOT_CHECKED, "needs the config step to pass first")
            return
        receiver = self.config.receiver
        if not self.can_check(
            "webhook", receiver.public_url, "[receiver] public_url is not set: set the URL Altinn should push to"
        ):
            return
        url = endpoint_url(receiver)
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": f"{self.config.altinn.platform_url}/events/api/v1/subscriptions/0",
            "type": VALIDATION_TYPE,
        }
        try:
            # No Authorization header: Altinn's pushes carry none, and no token may go to the receiver's own host.
            async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT, follow_redirects=False) as client:
                response = await client.post(url, json=event)
        except httpx.HTTPError as error:
            self.record(
                "webhook",
                FAILED,
                f"cannot reach {shown(url)}: {type(error).__name__} — is the receiver running and public_url right?",
            )
            return
        if not response.is_success:
            self.record(
                "webhook",
                FAILED,
                f"{shown(url)} answered HTTP {response.status_code} to a validation event; Altinn needs 2xx "
                "(check that the receiver runs this config and its secret)",
            )
            return
        self.record("webhook", PASSED, f"{shown(url)} answered {response.status_code} to a validation event")


def write_scope_warning(config: Config) -> str:
    """For a recipient whose client also holds the write scope: why that no longer matters (empty otherwise)."""
    if config.altinn.role != "recipient" or WRITE_SCOPE not in config.maskinporten.scopes:
        return ""
    return (
        f" — warning: the client also holds {WRITE_SCOPE}, and Altinn counts a caller whose token carries it as the "
        f"sender (markasread and confirm would then fail, correspondence contract §7.1); harmless here: the "
        f"receiver's recipient calls ask for {READ_SCOPE} alone, and only `send` uses {WRITE_SCOPE}"
    )


async def _granted(clients: AltinnClients, scope: str) -> bool:
    try:
        await clients.tokens.maskinporten([scope])
    except PermanentError:
        return False
    return True


@click.command("check")
@config_option
@json_option
def check_command(config_path: str | None, as_json: bool) -> None:
    """Check the setup step by step: config, key, maskinporten, exchange, correspondence-api, subscriptions,
    webhook. Each step is passed, failed (with what to do) or not checked (with why), and names the step of
    Altinn's onboarding guide it verifies (the seven steps `altinn-receiver init` prints). Exit 1 if any failed."""
    results = asyncio.run(Checks(config_path).run())
    ok = not any(r.status == FAILED for r in results)
    if as_json:
        steps = [{**asdict(r), "guide_steps": list(CHECK_GUIDE_STEPS.get(r.name, ()))} for r in results]
        echo_json({"ok": ok, "steps": steps})
    else:
        for r in results:
            click.echo(f"{r.status:<12} {r.name:<19} {guide_label(r.name):<17} {printable(r.detail)}")
    if not ok:
        sys.exit(1)
