"""Screenshots of each console page for docs/console.md: a demo-like receiver (a recipient subscribed to the
project's Altinn simulator, attachments downloaded, catch-up on) with realistic data, `altinn-receiver serve` with a
`[console]` section, signed in with Debian's Chromium through Playwright. `make screenshots` runs this; `make test`
never does.

    python -m tools.screenshots [--out docs/console]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from receiver.config import SubscriptionConfig
from receiver.onboarding.demo import (
    RECIPIENT_ORG,
    RECIPIENT_SCOPES,
    RESOURCE,
    SENDER_ORG,
    ReceiverSetup,
    register_identity,
)
from receiver.server_thread import free_port

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "console"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 860}
PUBLISHED = "no.altinn.correspondence.correspondencepublished"
DISPATCH = {"backoff_base": "200ms", "backoff_cap": "1s", "poll_interval": "100ms"}
TITLES = (
    ("Vedtak om tilskudd til lærlinger", 2),
    ("Varsel om tilsyn", 0),
    ("Purring: manglende a-melding for oktober", 1),
    ("Svar på søknad om skattefradrag", 2),
    ("Melding om endring i Enhetsregisteret", 0),
    ("Innkalling til dialogmøte", 1),
    ("Kvittering for innsendt MVA-melding", 1),
    ("Vedtak om refusjon av sykepenger", 3),
)


def wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def statuses(store: Path) -> dict[str, str]:
    if not store.exists():
        return {}
    with closing(sqlite3.connect(store)) as conn:
        return dict(conn.execute("SELECT id, status FROM inbox").fetchall())


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.TransportError:
        return False


def subscribed(readyz: str) -> bool:
    services = httpx.get(readyz, timeout=5).json().get("services", {})
    return bool(services.get("subscriptions", {}).get("state") == "validated")


@contextmanager
def serving(folder: Path, setup: ReceiverSetup, console_port: int) -> Iterator[str]:
    """`altinn-receiver serve` for `setup` (its config written to `folder`) until the block ends, once its
    subscription is validated; the console's URL."""
    config = folder / "receiver.toml"
    setup.write(config)
    with (folder / "serve.log").open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "receiver", "serve", "--config", str(config)], stdout=log,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{console_port}"
        wait(lambda: process.poll() is None and answers(url + "/login"), 30, f"the console on {url}")
        wait(lambda: subscribed(f"http://127.0.0.1:{setup.port}/readyz"), 30, "Altinn to validate the subscription")
        yield url
    finally:
        process.terminate()
        process.wait(30)


def console_section(port: int, token: str) -> str:
    return f"[console]\nport = {port}\ntoken = {json.dumps(token)}\n"


def recipient(folder: Path, sim: RunningSimulator, token: str, console_port: int) -> ReceiverSetup:
    """A recipient subscribed with its subject filter: attachments downloaded, a missing correspondence dead after
    one more try, catch-up on."""
    identity = register_identity(sim, folder, org=RECIPIENT_ORG, service_owner=None, scopes=RECIPIENT_SCOPES)
    extra = (
        f"[handlers.download_attachments]\ndir = {json.dumps(str(folder / 'attachments'))}\n"
        "[handlers.fetch_correspondence]\nnot_found_retries = 1\n" + console_section(console_port, token)
    )
    return ReceiverSetup(
        sim.url, identity, folder / "receiver.db",
        [SubscriptionConfig(RESOURCE, subject=f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}")],
        catchup={"interval": "30s", "start": "now"}, role="recipient", dispatch=DISPATCH, extra=extra,
    )  # fmt: skip


def service_owner(folder: Path, sim: RunningSimulator, token: str, console_port: int) -> ReceiverSetup:
    """The resource's service owner, subscribed without a subject filter, with the default pipelines."""
    identity = register_identity(sim, folder, org=SENDER_ORG)
    return ReceiverSetup(
        sim.url, identity, folder / "receiver.db", [SubscriptionConfig(RESOURCE)],
        catchup={"interval": "30s", "start": "now"}, role="service-owner", dispatch=DISPATCH,
        extra=console_section(console_port, token),
    )  # fmt: skip


def next_minute() -> Callable[[], bool]:
    """Whether the clock has moved on to another minute (UTC) since this was called."""
    started = time.gmtime().tm_min
    return lambda: time.gmtime().tm_min != started


def realistic_data(sim: RunningSimulator, setup: ReceiverSetup, owner: ReceiverSetup) -> None:
    """Correspondences with attachments in three waves a minute apart (the overview's chart has something to show),
    one fetch answered 503 (retried), and one event about a correspondence Altinn does not have (dead after its
    retries); all processed."""
    waves = (TITLES[:3], TITLES[3:5], TITLES[5:])
    # One fetch meets a busy Altinn: its event's page shows the retry among its attempts.
    busy = [{"path": "/correspondence/api/v1/correspondence/*/details", "error_rate": 1.0, "error_status": 503,
             "count": 1}]  # fmt: skip
    sim.admin.put("/faults", json=busy).raise_for_status()
    for n, wave in enumerate(waves):
        if n:
            wait(next_minute(), 61, "the next minute")
        for title, attachments in wave:
            sim.send_correspondence(RESOURCE, RECIPIENT_ORG, title=title, attachments=attachments)
        if n == 1:
            missing = "0b6e7c1c-5a43-4a8e-9a9e-3f1c2d7f4b10"
            sim.publish_event({
                "specversion": "1.0", "id": "5f0d8c9e-2b7a-4c1e-8d3f-6a2b1c0e9d87", "type": PUBLISHED,
                "source": f"{sim.url}/correspondence/api/v1/correspondence/{missing}", "resource": RESOURCE,
                "resourceinstance": missing, "subject": f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}",
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            })  # fmt: skip
    wait(lambda: settled(setup.store, len(TITLES) + 1), 60, "the recipient's events to be processed")
    # The service owner gets initialized and published for each (and more as the recipient acts).
    wait(lambda: settled(owner.store, 2 * len(TITLES)), 60, "the service owner's events to be processed")


def settled(store: Path, count: int) -> bool:
    now = statuses(store)
    return len(now) >= count and all(s in ("done", "dead", "skipped") for s in now.values())


def shoot(page: Page, url: str, out: Path, name: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    print(f"wrote {out / name}.png")


def take(console: str, store: Path, owner_console: str, owner_store: Path, token: str, out: Path) -> None:
    with closing(sqlite3.connect(store)) as conn:
        dead = conn.execute("SELECT id FROM inbox WHERE status = 'dead' LIMIT 1").fetchone()[0]
        done = conn.execute(
            "SELECT id FROM inbox WHERE status = 'done' ORDER BY attempts DESC, seq LIMIT 1"
        ).fetchone()[0]
        correspondence = conn.execute(
            "SELECT correspondence_id FROM correspondence_attachments GROUP BY correspondence_id"
            " ORDER BY COUNT(*) DESC LIMIT 1"
        ).fetchone()[0]
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
        page.goto(console + "/login")
        page.screenshot(path=str(out / "login.png"), clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": 340})
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_url(console + "/")
        for name, path in (
            ("overview", "/"),
            ("events", "/events"),
            ("event", f"/events/{done}"),
            ("dead", "/dead"),
            ("dead-event", f"/events/{dead}"),
            ("correspondences", "/correspondences"),
            ("correspondence", f"/correspondences/{correspondence}"),
            ("subscriptions", "/subscriptions"),
        ):
            shoot(page, console + path, out, name)
        page.goto(owner_console + "/login")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_url(owner_console + "/")
        shoot(page, owner_console + "/correspondences", out, "correspondences-service-owner")
        shoot(page, f"{owner_console}/correspondences/{correspondence}", out, "correspondence-service-owner")
        browser.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go (default: docs/console)")
    args = parser.parse_args(argv)
    if shutil.which(CHROMIUM) is None:
        raise SystemExit(f"screenshots: {CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    token = secrets.token_urlsafe(32)
    with (
        tempfile.TemporaryDirectory(prefix="console-screenshots-") as tmp,
        running_simulator(SimSettings(time_scale=50000, seed_correspondences=0)) as sim,
    ):
        sim.set_resource_owner(RESOURCE, SENDER_ORG)
        ports = free_port(), free_port()
        setup = recipient(Path(tmp) / "recipient", sim, token, ports[0])
        owner = service_owner(Path(tmp) / "service-owner", sim, token, ports[1])
        with (
            serving(Path(tmp) / "recipient", setup, ports[0]) as console,
            serving(Path(tmp) / "service-owner", owner, ports[1]) as owner_console,
        ):
            realistic_data(sim, setup, owner)
            take(console, setup.store, owner_console, owner.store, token, args.out)


if __name__ == "__main__":
    main()
