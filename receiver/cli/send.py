"""`altinn-receiver send`: send a correspondence as service owner, and with --follow watch its events arrive through
the running receiver — the loop test Altinn's Postman collection is used for."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from receiver.altinn import AltinnClients, AltinnError, PermanentError
from receiver.cli.common import (
    EXIT_FAILED,
    config_option,
    duration_option,
    echo_json,
    fail,
    fail_config,
    json_option,
    load,
)
from receiver.config import Config, ConfigError
from receiver.onboarding.agency import parse_resource_id
from receiver.onboarding.follow import Sighting, StoreWatch, final_outcome
from receiver.onboarding.sending import (
    check_attachments,
    check_title,
    initialize_body,
    initialized,
    recipient_urn,
    refusal_hint,
)
from receiver.scopes import WRITE_SCOPE
from receiver.store.backends import open_backend
from receiver.store.errors import StoreError
from receiver.text import printable
from receiver.timeutil import iso_after

POLL_INTERVAL = 0.2
EXIT_INTERRUPTED = 130
DEFAULT_DUE = 14 * 86400.0  # Altinn requires a due date when a confirmation is needed

T = TypeVar("T")
R = TypeVar("R")


def _converted(value: T, flag: str, parse: Callable[[T], R]) -> R:
    try:
        return parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


async def _initialize(config: Config, body: dict[str, Any], files: list[Path]) -> dict[str, Any]:
    async with AltinnClients.from_config(config) as clients:
        if files:
            return await clients.correspondence.initialize_with_files(body, files)
        return await clients.correspondence.initialize(body)


@click.command("send")
@click.option("--resource", required=True, help="The resource id (or urn:altinn:resource:ID) to send on.")
@click.option("--recipient", required=True, help="Organisation number, national identity number, or their URN.")
@click.option("--title", required=True, help="The message title (at most 255 characters).")
@click.option("--body", help="The message body (markdown). Default: the title.")
@click.option(
    "--attach",
    "attachments",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    help="A file to attach (repeat for more); sends through /upload.",
)
@click.option("--confirmation-needed", is_flag=True, help="Ask the recipient to confirm; --follow then waits for it.")
@click.option(
    "--confidential",
    is_flag=True,
    help="Mark it confidential (isConfidential): required on a resource whose policy asks for the access package for "
    "confidential mail, refused on any other.",
)
@duration_option(
    "--due", 'The due date, this long from now ("14d"). Default with --confirmation-needed: 14d.', allow_zero=False
)
@click.option("--follow", is_flag=True, help="Watch the correspondence's events arrive in the running receiver.")
@duration_option(
    "--timeout", 'With --follow: give up after this long ("30s", "10m"; exit 1). Default: no limit.', allow_zero=False
)
@json_option
@config_option
def send_command(
    resource: str,
    recipient: str,
    title: str,
    body: str | None,
    attachments: tuple[Path, ...],
    confirmation_needed: bool,
    confidential: bool,
    due: float | None,
    follow: bool,
    timeout: float | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Send a correspondence through Altinn's Correspondence API and print its id.

    Uses the config's Maskinporten client, which needs altinn:correspondence.write (its token carries only that).
    A bare 9-digit recipient is an organisation, 11 digits a person.

    With --follow it then watches the store of the receiver running with the same config (read only: the SQLite
    file or the PostgreSQL database of [store]; until `serve` has created it, it says so and waits) and prints each
    event as Altinn pushes it: published, notification created, read, confirmed. It ends when the recipient has
    read it (or confirmed it, with --confirmation-needed), or when publishing failed or it was purged: as the events
    say, or the stored status history (Altinn's status itself stays AttachmentsDownloaded once an attachment was
    downloaded, ranking it above Read and Confirmed).

    \b
    Exit status: 0 sent (and, with --follow, read or confirmed); 1 Altinn refused it, publishing failed, it was
    purged first, --timeout passed, or the store could not be read; 2 bad input or config; 130 stopped with Ctrl-C.
    """
    resource_id = _converted(resource, "--resource", parse_resource_id)
    to = _converted(recipient, "--recipient", recipient_urn)
    subject = _converted(title, "--title", check_title)
    _converted(list(attachments), "--attach", check_attachments)
    due_in = due or (DEFAULT_DUE if confirmation_needed else None)
    config = load(config_path)
    if WRITE_SCOPE not in config.maskinporten.scopes:
        fail_config(
            ConfigError("maskinporten.scopes", f"lacks {WRITE_SCOPE}: sending needs the service owner's scopes")
        )
    request = initialize_body(
        resource_id=resource_id,
        recipient=to,
        title=subject,
        body=body if body else subject,
        attachments=attachments,
        confirmation_needed=confirmation_needed,
        confidential=confidential,
        due=iso_after(due_in) if due_in else None,
    )
    try:
        response = asyncio.run(_initialize(config, request, list(attachments)))
        correspondence_id, status, orders = initialized(response)
    except ConfigError as error:
        fail_config(error)
    except (AltinnError, ValueError) as error:
        hint = refusal_hint(error.error_code, resource_id) if isinstance(error, PermanentError) else None
        fail(f"sending failed: {error}" + (f" — {hint}" if hint else ""))
    if as_json:
        echo_json({"correspondenceId": correspondence_id, "status": status, "recipient": to})
    else:
        click.echo(correspondence_id)
        click.echo(f"sent to {to} on {resource_id} (status {status})", err=True)
    if follow:
        watch = StoreWatch(open_backend(config.store), correspondence_id, orders)
        try:
            exit_status = asyncio.run(_follow(watch, confirmation_needed, timeout, as_json))
        except KeyboardInterrupt:
            click.echo(f"stopped following {correspondence_id}", err=True)
            exit_status = EXIT_INTERRUPTED
        sys.exit(exit_status)


def _show(sighting: Sighting, correspondence_id: str, as_json: bool) -> None:
    if as_json:
        echo_json(sighting.to_json(correspondence_id))
        return
    if sighting.kind == "status":
        # Altinn's status is the highest it reached, not the latest: say what it hides (Read behind a download).
        hidden = f" ({', '.join(sighting.hidden)} in its history)" if sighting.hidden else ""
        what = f"status {sighting.name}{hidden}"
    else:
        what = f"{sighting.label:<24} {sighting.name}"
    via = f" ({sighting.channel})" if sighting.channel else ""
    click.echo(printable(f"{sighting.time}  {what}{via}"))


async def _follow(watch: StoreWatch, confirmation_needed: bool, limit: float | None, as_json: bool) -> int:
    """Print what arrives until a final outcome; the exit status. Ctrl-C ends it with KeyboardInterrupt (out of
    `asyncio.run`), the store closed."""
    correspondence_id = watch.correspondence_id
    awaited = "Confirmed" if confirmation_needed else "Read"
    deadline = None if limit is None else time.monotonic() + limit
    said = ""  # what the last "waiting for" said: each new thing awaited is said once
    click.echo(f"following {correspondence_id} in {watch.location} until {awaited} (Ctrl-C stops) ...", err=True)
    try:
        while True:
            sightings = await watch.poll()
            if watch.awaiting and watch.awaiting != said:
                said = watch.awaiting
                click.echo(f"waiting for {said}: is `altinn-receiver serve` running with this config?", err=True)
            for sighting in sightings:
                _show(sighting, correspondence_id, as_json)
                outcome = final_outcome(sighting.outcomes, confirmation_needed=confirmation_needed)
                if outcome is not None:
                    ok = outcome in ("Read", "Confirmed")
                    click.echo(f"{correspondence_id}: {outcome}", err=True)
                    return 0 if ok else EXIT_FAILED
            if deadline is not None and time.monotonic() > deadline:
                click.echo(f"error: {correspondence_id} did not reach {awaited} within --timeout", err=True)
                return EXIT_FAILED
            await asyncio.sleep(POLL_INTERVAL)
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_FAILED
    finally:
        await watch.close()
