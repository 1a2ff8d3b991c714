"""The console end to end in a real headless Chromium (Debian's, driven by Playwright through its path): one
`altinn-receiver serve` with a `[console]` section, a recipient subscribed to the project's Altinn simulator, shared
by every test here, and one browser."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser_support import TOKEN, ConsoleReceiver, console_receiver, launch_chromium, sign_in
from tests.dispatch_support import query, wait_settled
from tests.support import wait_until

CORRESPONDENCE_DETAILS = "/correspondence/api/v1/correspondence/*/details"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleReceiver]:
    with console_receiver(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, receiver: ConsoleReceiver) -> Iterator[Page]:
    """A fresh browser context, signed in."""
    context = browser.new_context(base_url=receiver.url)
    context.set_default_timeout(10_000)
    signed_in = context.new_page()
    sign_in(signed_in, receiver.url)
    expect(signed_in).to_have_url(re.compile(r"/$"))
    yield signed_in
    context.close()


def event_of(store: Path, correspondence_id: str) -> str:
    def found() -> str | None:
        rows = query(store, "SELECT id FROM inbox WHERE resourceinstance = ?", correspondence_id)
        return str(rows[0]["id"]) if rows else None

    return wait_until(found, message=f"the event of correspondence {correspondence_id}")


def fault(receiver: ConsoleReceiver, **rule: object) -> None:
    """The next fetch of a correspondence's details fails as `rule` says (once)."""
    rules = [{"path": CORRESPONDENCE_DETAILS, "error_rate": 1.0, "count": 1, **rule}]
    assert receiver.sim.admin.put("/faults", json=rules).status_code == 200


def status_of(store: Path, event_id: str) -> str:
    with closing(sqlite3.connect(store)) as conn:
        return str(conn.execute("SELECT status FROM inbox WHERE id = ?", (event_id,)).fetchone()[0])


def test_signing_in_takes_the_token_and_refuses_a_wrong_one(browser: Browser, receiver: ConsoleReceiver) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(receiver.url + "/subscriptions")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("input[name=token]", "not-the-token-" + "x" * 40)
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("not the console token")
    assert not [c for c in context.cookies() if c["name"] == "console_session"]
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(receiver.url + "/subscriptions")
    [cookie] = [c for c in context.cookies() if c["name"] == "console_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"] and TOKEN not in page.content()
    context.close()


def test_another_sites_page_cannot_sign_the_browser_in(browser: Browser, receiver: ConsoleReceiver) -> None:
    """Login CSRF: a page elsewhere (here about:blank, a site of its own) posts the sign-in form with the token it
    knows; without the form's CSRF token the browser gets no session, and is shown a form that works."""
    context = browser.new_context()
    page = context.new_page()
    page.set_content(f'<form method="post" action="{receiver.url}/login"><input name="token" value="{TOKEN}"></form>')
    page.eval_on_selector("form", "form => form.submit()")
    expect(page.get_by_role("alert")).to_contain_text("did not come from this console")
    assert not [c for c in context.cookies() if c["name"] == "console_session"]
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(receiver.url + "/")
    context.close()


def test_signing_out_is_a_button_and_ends_the_session(page: Page, receiver: ConsoleReceiver) -> None:
    page.goto("/logout")  # opening the address signs no one out: it offers the button
    expect(page.locator("h1")).to_have_text("Sign out")
    page.goto("/events")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(receiver.url + "/login")
    assert not [c for c in page.context.cookies() if c["name"] == "console_session"]
    page.goto("/events")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_a_pushed_event_shows_on_the_event_log_without_a_reload(page: Page, receiver: ConsoleReceiver) -> None:
    page.goto("/events")
    page.evaluate("window.stillTheSamePage = true")
    correspondence_id = receiver.send("Live i konsollen")
    event_id = event_of(receiver.store, correspondence_id)
    # The stream shows a change within 2 s of its commit (the issue); a second more for the browser under load.
    expect(page.locator(f"a[href='/events/{event_id}']")).to_be_visible(timeout=3_000)
    assert page.evaluate("window.stillTheSamePage") is True


def test_filters_are_query_parameters_and_narrow_the_log(page: Page, receiver: ConsoleReceiver) -> None:
    wanted = event_of(receiver.store, receiver.send("Filtrert"))
    other = event_of(receiver.store, receiver.send("Ikke denne"))
    wait_settled(receiver.store, 2)
    page.goto("/events")
    page.fill("input[name=q]", wanted)
    page.locator("form.filters").locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(rf"[?&]q={wanted}"))
    expect(page.locator(f"a[href='/events/{wanted}']")).to_be_visible()
    expect(page.locator(f"a[href='/events/{other}']")).to_have_count(0)
    page.goto("/events?status=dead")
    expect(page.locator(f"a[href='/events/{wanted}']")).to_have_count(0)
    page.goto("/events?status=done&type=*.correspondencepublished")
    expect(page.locator(f"a[href='/events/{wanted}']")).to_be_visible()


def test_an_event_page_shows_its_attempts(page: Page, receiver: ConsoleReceiver) -> None:
    fault(receiver, error_status=503)
    event_id = event_of(receiver.store, receiver.send("To forsøk"))
    wait_until(lambda: status_of(receiver.store, event_id) == "done", timeout=20, message="the event to be done")
    page.goto(f"/events/{event_id}")
    attempts = page.locator("table.attempts tbody tr")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("503")
    expect(attempts.nth(1)).to_contain_text("done")


def test_a_dead_event_is_replayed_from_the_dead_letters_and_ends_done(page: Page, receiver: ConsoleReceiver) -> None:
    fault(receiver, error_status=401, error_code=4001)  # Altinn's policy says no: permanent
    event_id = event_of(receiver.store, receiver.send("Død, så levende"))
    wait_until(lambda: status_of(receiver.store, event_id) == "dead", timeout=20, message="the event to be dead")
    page.goto("/dead")
    row = page.locator("tr", has=page.locator(f"a[href='/events/{event_id}']"))
    row.locator("input[type=checkbox]").check()
    page.get_by_role("button", name="Replay selected…").click()
    expect(page.locator("h1")).to_have_text("Replay 1 dead event?")
    page.get_by_role("button", name="Replay 1 event").click()
    expect(page.get_by_role("status")).to_contain_text("Replayed 1 event")
    wait_until(lambda: status_of(receiver.store, event_id) == "done", timeout=20, message="the replayed event")
    page.goto(f"/events/{event_id}")
    expect(page.locator("main")).to_contain_text("done")


def test_a_change_without_the_csrf_token_is_refused(page: Page, receiver: ConsoleReceiver) -> None:
    without = page.request.post(receiver.url + "/dead/replay", form={"all": "1", "confirmed": "1"})
    assert without.status == 403
    wrong = page.request.post(receiver.url + "/dead/replay", form={"all": "1", "confirmed": "1", "csrf_token": "x"})
    assert wrong.status == 403


def test_the_webhook_port_does_not_serve_the_console(receiver: ConsoleReceiver) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/", "/login", "/dead", "/correspondences", "/subscriptions", "/static/console.css"):
        assert httpx.get(receiver.webhook_url + path, headers=bearer).status_code == 404, path
    assert httpx.get(receiver.webhook_url + "/events", headers=bearer).status_code in (404, 405)
    assert httpx.get(receiver.url + "/events", headers=bearer).status_code == 200


def test_the_overview_correspondences_and_subscriptions_show_what_the_receiver_holds(
    page: Page, receiver: ConsoleReceiver
) -> None:
    correspondence_id = receiver.send("Vedtak med vedlegg", attachments=2)
    event_id = event_of(receiver.store, correspondence_id)
    wait_until(lambda: status_of(receiver.store, event_id) == "done", timeout=20, message="the event to be done")

    page.goto("/")
    expect(page.locator("#readiness")).to_contain_text("ready")
    expect(page.locator("#throughput svg rect.bar.received").first).to_be_visible()
    expect(page.locator("#store")).to_contain_text("sqlite")

    page.goto("/correspondences")
    row = page.locator("tr", has=page.locator(f"a[href='/correspondences/{correspondence_id}']"))
    expect(row).to_contain_text("Vedtak med vedlegg")
    row.locator(f"a[href='/correspondences/{correspondence_id}']").click()
    expect(page.locator("#facts")).to_contain_text("urn:altinn:organization:identifier-no:991825827")
    links = page.locator("#attachments a[download]")
    expect(links).to_have_count(2)
    with page.expect_download() as downloading:
        links.first.click()
    download = downloading.value
    folder = receiver.attachments / correspondence_id
    [stored] = [p for p in folder.rglob("*") if p.is_file() and p.name == download.suggested_filename]
    assert Path(download.path()).read_bytes() == stored.read_bytes()
    expect(page.locator("#timeline")).to_contain_text("correspondencepublished")

    page.goto("/subscriptions")
    expect(page.locator("#subscriptions")).to_contain_text("validated")
    expect(page.locator("#subscriptions")).to_contain_text("current")
