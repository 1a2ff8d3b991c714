"""The seven steps of Altinn's "getting started as service owner" guide, filled in with one agency's values;
which guide step each `check` step verifies; and the likely cause of a refused Maskinporten grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from receiver.onboarding.agency import Agency
from receiver.onboarding.templates import CONFIG_FILE, ENV_FILE, JWK_FILE, POLICY_FILE

GUIDE_URL = "https://docs.altinn.studio/correspondence/getting-started/developer-guides/serviceowner/"
SERVICE_DESK = "servicedesk@altinn.no"
ALTINN_STUDIO = "https://altinn.studio/"
SERVICE_OWNER_GUIDE = "https://www.altinndigital.no/kom-i-gang/guide-kom-i-gang-med-altinn/"


@dataclass(frozen=True)
class GuideStep:
    number: int
    title: str


GUIDE_STEPS = (
    GuideStep(1, "Register as a service owner in Altinn"),
    GuideStep(2, "Create the resource, with a policy permitting read, write and subscribe"),
    GuideStep(3, "Get the scopes from Altinn's service desk"),
    GuideStep(4, "Register a Maskinporten client with those scopes and your public key"),
    GuideStep(5, "Authenticate: a Maskinporten token, exchanged for an Altinn token"),
    GuideStep(6, "Integrate with the Correspondence API"),
    GuideStep(7, "Set up event subscriptions"),
)

# `altinn-receiver check` step -> the guide steps whose result it verifies.
CHECK_GUIDE_STEPS: dict[str, tuple[int, ...]] = {
    "config": (2, 4),  # the resource (step 2) and the client and key (step 4) are in receiver.toml
    "key": (4,),  # a grant signed with the configured kid is accepted: the public key is on the client
    "maskinporten": (3, 4),  # each scope was granted by Altinn and added to the client
    "exchange": (5,),
    "correspondence-api": (2, 6),  # the API answers for the resource: the policy lets this organisation in
    "subscriptions": (7,),
    "webhook": (7,),  # Altinn's validation event reaches the public URL
}


def guide_label(check_step: str) -> str:
    """`guide step 4` / `guide steps 3+4` for a check step ('' for a step the guide does not cover)."""
    numbers = CHECK_GUIDE_STEPS.get(check_step, ())
    if not numbers:
        return ""
    return ("guide step " if len(numbers) == 1 else "guide steps ") + "+".join(str(n) for n in numbers)


def grant_cause(error: str | int | None, description: str | None, *, kid: str | None, scopes: tuple[str, ...]) -> str:
    """The likely cause of a refused Maskinporten grant and where to fix it (OAuth error codes, RFC 6749 §5.2).
    `kid` is None when the grant names its key by certificate (x5c)."""
    text = (description or "").lower()
    if error == "invalid_scope" or "scope" in text:
        return (
            f"missing scope: the client does not hold every scope asked for ({' '.join(scopes)}); ask {SERVICE_DESK} "
            "for access (guide step 3) and add the scopes to the client in the self-service (guide step 4)"
        )
    if error == "invalid_grant" and any(
        word in text for word in ("kid", "key", "signature", "certificate", "authentication failed")
    ):
        if kid is None:
            return "unknown certificate: the business certificate is not the one registered on the client (step 4)"
        return (
            f"unknown kid: the client has no key with kid {kid} (or another key under that kid); add {JWK_FILE} to "
            "the client's keys in the self-service (guide step 4), or set [maskinporten] kid to the registered kid"
        )
    if error == "invalid_client":
        return "unknown client: [maskinporten] client_id is not a client of this Maskinporten (guide step 4)"
    if "aud" in text or "iat" in text or "exp" in text:
        return "the assertion's time or audience was refused: check the clock (NTP) and [maskinporten] issuer"
    return "check [maskinporten] client_id, issuer and key against the client in the self-service (guide step 4)"


def service_desk_request(agency: Agency) -> str:
    """A ready-to-send request for the scopes (guide step 3)."""
    role = "service owner (sender)" if agency.is_service_owner else "recipient"
    scopes = "\n".join(f"  - {scope}" for scope in agency.scopes)
    return (
        f"To: {SERVICE_DESK}\n"
        f"Subject: Access to scopes for Altinn Correspondence in {agency.environment_name}, org {agency.org}\n"
        "\n"
        "Hello,\n"
        "\n"
        f"Organisation {agency.org} is setting up Altinn Correspondence as {role} for the resource\n"
        f"{agency.resource_id}, with events delivered to our own receiver. Please give our organisation access\n"
        f"to these scopes in {agency.environment_name}, so that we can add them to our Maskinporten client:\n"
        f"{scopes}\n"
        "\n"
        "Regards,\n"
    )


def _indent(text: str, prefix: str = "     ") -> str:
    return "\n".join(prefix + line if line else "" for line in text.splitlines())


def _checked_by(number: int) -> str:
    steps = [name for name, numbers in CHECK_GUIDE_STEPS.items() if number in numbers]
    return f"     `check` verifies it in: {', '.join(steps)}" if steps else ""


def _bodies(agency: Agency, directory: Path) -> dict[int, str]:
    config = directory / CONFIG_FILE
    policy = directory / POLICY_FILE
    jwk = directory / JWK_FILE
    scopes = " ".join(agency.scopes)
    if agency.is_service_owner:
        first = (
            f"Only if organisation {agency.org} is not a service owner yet: follow {SERVICE_OWNER_GUIDE}.\n"
            f"Your Altinn org code ({agency.owner_code}) is what policy.xml grants write to."
        )
        second = (
            f"In Altinn Studio ({ALTINN_STUDIO}), resource dashboard: create the resource {agency.resource_id}\n"
            f"(type: correspondence service) and upload {policy} as its policy. It permits read and subscribe\n"
            f"to role {agency.role_code} in recipient organisations, and write and subscribe to {agency.owner_code}."
        )
        subscription = f"resourceFilter {agency.resource_urn}, no subjectFilter (every recipient)"
        integrate = (
            f"Send yourself a test message and watch it arrive while `serve` runs:\n"
            f"altinn-receiver send --config {config} --resource {agency.resource_id} "
            f"--recipient <orgnr> --title Test --follow"
        )
    else:
        first = "Not needed for a recipient: the resource's service owner is registered already."
        second = (
            f"The service owner creates the resource {agency.resource_id}. Ask them to check that its policy\n"
            f"permits read and subscribe to role {agency.role_code} ({policy} shows those rules) and that\n"
            f"organisation {agency.org} has access to it."
        )
        subscription = f"resourceFilter {agency.resource_urn}, subjectFilter {agency.org_urn}"
        integrate = f"`check` lists the correspondences of {agency.resource_id} that {agency.org} has received."
    endpoint = agency.public_url or "<[receiver] public_url: set it in receiver.toml>"
    return {
        1: first,
        2: second,
        3: (
            f"Scopes for {agency.role}: {scopes}\n"
            "An API key (Ocp-Apim-Subscription-Key) is no longer needed; leave it out unless Altinn gives you one.\n"
            "Send this:\n\n" + _indent(service_desk_request(agency), "  ")
        ),
        4: (
            f"In Digdir's self-service for {agency.environment_name} ({agency.self_service_url}), as {agency.org}:\n"
            f"create a Maskinporten client with the scopes {scopes},\n"
            f"add the public key in {jwk} (kid {agency.kid}) under the client's keys,\n"
            f"and put the client's id into {config} as [maskinporten] client_id"
            + (f" (now: {agency.client_id})." if agency.client_id else ".")
        ),
        5: (
            f"The receiver signs the grant with maskinporten.pem (kid {agency.kid}) at {agency.maskinporten_issuer}\n"
            f"and exchanges the token at {agency.platform}/authentication/api/v1/exchange/maskinporten."
        ),
        6: integrate,
        7: (
            f"`altinn-receiver serve` creates and keeps the subscription {subscription}\n"
            f"with endpoint {endpoint}?code=<secret>. The secret is in {directory / ENV_FILE};\n"
            f"load it into the environment before starting, then verify every step:\n"
            f"altinn-receiver check --config {config}"
        ),
    }


def render_steps(agency: Agency, directory: Path) -> str:
    """The seven steps as text for people, each with what `check` verifies of it."""
    bodies = _bodies(agency, directory)
    out = [f"The seven steps of Altinn's onboarding guide ({GUIDE_URL}) for {agency.org}:", ""]
    for step in GUIDE_STEPS:
        out.append(f"{step.number}. {step.title}")
        out.append(_indent(bodies[step.number]))
        checked = _checked_by(step.number)
        if checked:
            out.append(checked)
        out.append("")
    return "\n".join(out)
