"""`altinn-receiver init`: a Maskinporten key, a commented config, the secret, the resource policy, and the seven
onboarding steps filled in for this agency."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from receiver.config import ROLES
from receiver.onboarding import agency as values
from receiver.onboarding.agency import DEFAULT_ROLE_CODE, ENVIRONMENTS, SERVICE_OWNER, Agency
from receiver.onboarding.files import PRIVATE, PUBLIC, existing, write_file
from receiver.onboarding.keys import KEY_SIZE, generate_private_key, private_pem, public_jwk
from receiver.onboarding.policy import policy_xml
from receiver.onboarding.steps import render_steps
from receiver.onboarding.templates import (
    CONFIG_FILE,
    ENV_FILE,
    JWK_FILE,
    KEY_FILE,
    POLICY_FILE,
    new_secret,
    receiver_env,
    receiver_toml,
)

EXIT_EXISTS = 1


@dataclass(frozen=True)
class Question:
    """One value init needs: from its flag, else asked on a terminal, else its default (or a usage error)."""

    flag: str
    prompt: str
    parse: Callable[[str], str]
    default: str | None = None  # None: required; "": optional


def _converter(parse: Callable[[str], str]) -> Callable[[str], str]:
    """`parse` with its ValueError as click's BadParameter, so click.prompt asks again."""

    def convert(text: str) -> str:
        try:
            return parse(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.strip() not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {text!r}")
        return text.strip()

    return parse


def _url(flag: str) -> Callable[[str], str]:
    return lambda text: values.parse_url(text, what=flag)


def _optional(parse: Callable[[str], str]) -> Callable[[str], str]:
    return lambda text: parse(text) if text.strip() else ""


def _flag(given: str, flag: str, parse: Callable[[str], str]) -> str:
    try:
        return _converter(parse)(given)
    except click.BadParameter as exc:
        exc.param_hint = flag
        raise


def _answer(question: Question, given: str | None, interactive: bool) -> str:
    if given is not None:
        return _flag(given, question.flag, question.parse)
    if interactive:
        answer: str = click.prompt(
            question.prompt,
            default=question.default,
            value_proc=_converter(question.parse),
            show_default=bool(question.default),
        )
        return answer
    if question.default is None:
        raise click.UsageError(f"missing {question.flag}: pass it (or run without --yes on a terminal to be asked)")
    return question.default


@click.command("init")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to write the five files into (created if missing).",
)
@click.option("--environment", type=click.Choice(ENVIRONMENTS), help="Altinn environment [default: tt02].")
@click.option(
    "--resource", help="The resource id in Altinn's resource registry (with or without urn:altinn:resource:)."
)
@click.option("--org", help="Your organisation number (9 digits).")
@click.option("--role", type=click.Choice(ROLES), help="service-owner: you send (the default); recipient: you receive.")
@click.option(
    "--owner-code", help="Service owner only: your organisation's code in Altinn (e.g. digdir), for policy.xml."
)
@click.option(
    "--role-code", help=f"The Altinn role recipients need for read/subscribe in policy.xml [{DEFAULT_ROLE_CODE}]."
)
@click.option("--client-id", help="The Maskinporten client id, if the client exists already (step 4).")
@click.option("--public-url", help="The public https URL of the webhook, as Altinn reaches it (step 7).")
@click.option("--platform-url", help="Another Altinn platform than the environment's (e.g. the simulator's URL).")
@click.option("--issuer", help="Another Maskinporten issuer than the environment's (e.g. the simulator's URL + '/').")
@click.option("--yes", "-y", is_flag=True, help="Ask nothing: take flags and defaults (for scripts).")
@click.option(
    "--force", is_flag=True, help="Replace existing files, the key included (its registered JWK stops working)."
)
def init_command(
    directory: Path,
    environment: str | None,
    resource: str | None,
    org: str | None,
    role: str | None,
    owner_code: str | None,
    role_code: str | None,
    client_id: str | None,
    public_url: str | None,
    platform_url: str | None,
    issuer: str | None,
    yes: bool,
    force: bool,
) -> None:
    """Set up a new receiver: key, config, secret and resource policy, then print Altinn's seven onboarding steps
    with your values filled in.

    \b
    Writes into --dir:
      maskinporten.pem       RSA private key that signs Maskinporten grants (mode 0600)
      maskinporten.jwk.json  its public JWK with a kid: paste it into Digdir's self-service
      receiver.toml          the commented config for your role
      receiver.env           ALTINN_RECEIVER_SECRET, the webhook code (mode 0600)
      policy.xml             XACML policy for your resource (read/subscribe for recipients, write for you)

    Missing values are asked for on a terminal; with --yes, --resource and --org (and --owner-code for a service
    owner) must be given. Existing files are never replaced without --force. Then run
    `altinn-receiver check --config DIR/receiver.toml` after each step.
    """
    interactive = not yes and sys.stdin.isatty()

    def ask(question: Question, given: str | None) -> str:
        return _answer(question, given, interactive)

    chosen_environment = ask(
        Question("--environment", "Altinn environment", _choice(ENVIRONMENTS), "tt02"), environment
    )
    chosen_role = ask(Question("--role", "Role", _choice(ROLES), SERVICE_OWNER), role)
    resource_id = ask(Question("--resource", "Resource id", values.parse_resource_id), resource)
    orgnr = ask(Question("--org", "Organisation number", values.parse_orgnr), org)
    owner = ""
    if chosen_role == SERVICE_OWNER:
        owner = ask(
            Question("--owner-code", "Your org code in Altinn (e.g. digdir)", values.parse_owner_code), owner_code
        )
    code = ask(
        Question("--role-code", "Role code recipients need", values.parse_role_code, DEFAULT_ROLE_CODE), role_code
    )
    client = ask(
        Question("--client-id", "Maskinporten client id (empty if not created yet)", _optional(str.strip), ""),
        client_id,
    )
    url_question = Question(
        "--public-url", "Public https URL of the webhook (empty if not known yet)", _optional(_url("--public-url")), ""
    )
    url = ask(url_question, public_url)
    platform = _flag(platform_url, "--platform-url", _url("--platform-url")) if platform_url else ""
    mp_issuer = _flag(issuer, "--issuer", _url("--issuer")) if issuer else ""

    files = [directory / name for name in (KEY_FILE, JWK_FILE, CONFIG_FILE, ENV_FILE, POLICY_FILE)]
    present = existing(files)
    if present and not force:
        names = ", ".join(path.name for path in present)
        click.echo(
            f"error: {names} already exist in {directory}: init never replaces them, above all not the key whose JWK "
            "is registered in Maskinporten. Use another --dir, or pass --force to replace all five.",
            err=True,
        )
        sys.exit(EXIT_EXISTS)
    directory.mkdir(parents=True, exist_ok=True)

    click.echo(f"Generating a {KEY_SIZE}-bit RSA key ...", err=True)
    key = generate_private_key()
    jwk = public_jwk(key)
    agency = Agency(
        environment=chosen_environment,
        role=chosen_role,
        resource_id=resource_id,
        org=orgnr,
        kid=jwk["kid"],
        client_id=client,
        public_url=url,
        owner_code=owner,
        role_code=code,
        platform_url=platform,
        issuer=mp_issuer,
    )
    contents = [
        (KEY_FILE, private_pem(key), PRIVATE),
        (JWK_FILE, json.dumps(jwk, indent=2) + "\n", PUBLIC),
        (CONFIG_FILE, receiver_toml(agency), PUBLIC),
        (ENV_FILE, receiver_env(new_secret()), PRIVATE),
        (POLICY_FILE, policy_xml(agency), PUBLIC),
    ]
    for name, text, mode in contents:
        write_file(directory / name, text, mode=mode, overwrite=force)
        click.echo(f"wrote {directory / name} (mode {mode:04o})")
    click.echo("")
    click.echo(render_steps(agency, directory))
