"""The Correspondence API client: reading, attachment download (cap, MD5), actions, listing and sending."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from receiver.altinn import AltinnClients, Attachment, Correspondence, PermanentError
from receiver.config import ConfigError
from receiver.timeutil import parse_iso
from tests.altinn_support import SERVICE_OWNER, FakeAltinn, Handler, call, new_key

KEY = new_key()
CID = str(uuid.uuid4())
AID = str(uuid.uuid4())
FILE = b"%PDF-1.7 vedtak " * 4096  # 64 KiB
MD5 = hashlib.md5(FILE).hexdigest()
EXPIRES = "2026-12-24T12:00:00.1234567+00:00"
BASE = "/correspondence/api/v1/correspondence"
OVERVIEW = {
    "correspondenceId": CID,
    "resourceId": "my-resource",
    "sender": "urn:altinn:organization:identifier-no:991825827",
    "recipient": "urn:altinn:organization:identifier-no:310000000",
    "status": "Published",
    "content": {
        "language": "nb",
        "messageTitle": "Vedtak",
        "attachments": [
            {
                "id": AID,
                "fileName": "vedtak.pdf",
                "displayName": "Vedtak",
                "checksum": MD5.upper(),
                "dataType": "application/pdf",
                "status": "Published",
                "expirationTime": EXPIRES,
                "isEncrypted": False,
            }
        ],
    },
}


def json_answer(body: Any, status: int = 200) -> Handler:
    async def handler(fake: FakeAltinn, request: Request) -> Response:
        return JSONResponse(body, status_code=status)

    return handler


def download_api(*, declare_length: bool = True, body: bytes = FILE) -> dict[str, Handler]:
    async def download(fake: FakeAltinn, request: Request) -> Response:
        async def chunks() -> Any:
            for i in range(0, len(body), 8192):
                yield body[i : i + 8192]

        headers = {"content-length": str(len(body))} if declare_length else {}
        return StreamingResponse(chunks(), media_type="application/pdf", headers=headers)

    return {f"GET {BASE}/{{cid}}/attachment/{{aid}}/download": download}


def test_details_is_read_into_a_typed_correspondence(tmp_path: Path) -> None:
    details = {**OVERVIEW, "statusHistory": [{"status": "Published"}]}
    with FakeAltinn(KEY.public_key(), api={f"GET {BASE}/{{cid}}/details": json_answer(details)}) as fake:
        result = call(fake, tmp_path, KEY, lambda c: c.correspondence.details(CID))
    assert (result.correspondence_id, result.resource_id, result.status, result.message_title) == (
        CID,
        "my-resource",
        "Published",
        "Vedtak",
    )
    assert result.attachments == (
        Attachment(AID, "vedtak.pdf", "Vedtak", MD5.upper(), "application/pdf", "Published", EXPIRES),
    )
    assert result.raw == details
    assert [s.path for s in fake.seen if s.path.startswith(BASE)] == [f"{BASE}/{CID}/details"]


@pytest.mark.parametrize(
    "content",
    [None, {"language": "no", "messageTitle": "", "messageSummary": "", "messageBody": "", "attachments": []}],
    ids=["null", "stand-in"],
)
def test_a_sender_after_publish_gets_no_content_and_the_model_says_so(content: Any) -> None:
    """Contract §7.3: Altinn's handler leaves the content out (null); its API writes an empty stand-in."""
    read = Correspondence.from_json({**OVERVIEW, "status": "Read", "content": content})
    assert (read.has_content, read.message_title, read.attachments, read.status) == (False, None, (), "Read")
    assert Correspondence.from_json(OVERVIEW).has_content


def test_an_attachment_is_unavailable_once_expired_or_purged_or_past_its_expiration_time() -> None:
    attachment = Correspondence.from_json(OVERVIEW).attachments[0]
    before, after = parse_iso("2026-12-24T11:59:59Z"), parse_iso("2026-12-24T12:00:01Z")
    assert (attachment.unavailable(before), attachment.unavailable(after)) == (None, "Expired")
    for status, unavailable in (("expired", "Expired"), ("Purged", "Purged"), ("Published", None)):
        no_expiry = replace(attachment, status=status, expiration_time=None)
        assert no_expiry.unavailable(after) == unavailable


def test_overview_404_surfaces_error_code_1001(tmp_path: Path) -> None:
    problem = {"title": "The requested correspondence was not found", "status": 404, "errorCode": 1001}
    with (
        FakeAltinn(KEY.public_key(), api={f"GET {BASE}/{{cid}}": json_answer(problem, 404)}) as fake,
        pytest.raises(PermanentError) as err,
    ):
        call(fake, tmp_path, KEY, lambda c: c.correspondence.overview(CID))
    assert err.value.error_code == 1001


def test_ids_that_are_not_uuids_never_reach_a_request_path(tmp_path: Path) -> None:
    with FakeAltinn(KEY.public_key()) as fake, pytest.raises(PermanentError, match="not a UUID"):
        call(fake, tmp_path, KEY, lambda c: c.correspondence.details("../../events/api/v1/subscriptions"))
    assert fake.seen == []


def test_download_streams_to_dest_and_checks_md5_in_any_case(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "vedtak.pdf"
    with FakeAltinn(KEY.public_key(), api=download_api()) as fake:
        written = call(
            fake,
            tmp_path,
            KEY,
            lambda c: c.correspondence.download_attachment(CID, AID, dest, max_bytes=len(FILE), checksum=MD5.upper()),
        )
    assert written == len(FILE)
    assert dest.read_bytes() == FILE
    assert sorted(p.name for p in dest.parent.iterdir()) == ["vedtak.pdf"]


@pytest.mark.parametrize("declare_length", [True, False])
def test_download_over_the_cap_leaves_nothing_behind(tmp_path: Path, declare_length: bool) -> None:
    dest = tmp_path / "out" / "vedtak.pdf"
    with (
        FakeAltinn(KEY.public_key(), api=download_api(declare_length=declare_length)) as fake,
        pytest.raises(PermanentError, match="larger than the cap of 1000 bytes"),
    ):
        call(fake, tmp_path, KEY, lambda c: c.correspondence.download_attachment(CID, AID, dest, max_bytes=1000))
    assert list(dest.parent.iterdir()) == []


def test_download_with_a_wrong_md5_keeps_no_file(tmp_path: Path) -> None:
    dest = tmp_path / "vedtak.pdf"
    dest.write_bytes(b"the previous version")
    with (
        FakeAltinn(KEY.public_key(), api=download_api(body=FILE[:-1] + b"X")) as fake,
        pytest.raises(PermanentError, match="does not match"),
    ):
        call(fake, tmp_path, KEY, lambda c: c.correspondence.download_attachment(CID, AID, dest, checksum=MD5))
    assert dest.read_bytes() == b"the previous version"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_mark_as_read_confirm_and_list_ids(tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    api = {
        f"POST {BASE}/{{cid}}/markasread": json_answer(CID),
        f"POST {BASE}/{{cid}}/confirm": json_answer(CID),
        f"GET {BASE}": json_answer({"ids": ids}),
    }
    with FakeAltinn(KEY.public_key(), api=api) as fake:

        async def work(c: AltinnClients) -> list[str]:
            await c.correspondence.mark_as_read(CID)
            await c.correspondence.confirm(CID)
            return await c.correspondence.list_ids(
                "urn:altinn:resource:my-resource", role="Recipient", status="Published"
            )

        # A recipient whose client also holds the write scope: Altinn would count it as the sender (§7.1).
        scopes = ("altinn:events.subscribe", "altinn:correspondence.read", "altinn:correspondence.write")
        listed = call(fake, tmp_path, KEY, work, scopes=scopes)
    assert listed == ids
    calls = [(s.method, s.path, s.query, s.token_scope) for s in fake.seen if s.path.startswith(BASE)]
    assert calls == [
        ("POST", f"{BASE}/{CID}/markasread", "", "altinn:correspondence.read"),
        ("POST", f"{BASE}/{CID}/confirm", "", "altinn:correspondence.read"),
        ("GET", BASE, "resourceId=my-resource&role=Recipient&status=Published", "altinn:correspondence.read"),
    ]


def test_initialize_with_files_sends_form_fields_and_file_parts_even_on_the_retry(tmp_path: Path) -> None:
    received: dict[str, Any] = {}

    async def upload(fake: FakeAltinn, request: Request) -> Response:
        form = await request.form()
        if not received:  # the first attempt is refused: the retry must send the file from its start again
            received["refused"] = True
            fake.revoked.add(request.headers["authorization"][7:])
            return Response(status_code=401)
        received["fields"] = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        received["files"] = [
            (v.filename, await v.read()) for k, v in form.multi_items() if k == "attachments" and not isinstance(v, str)
        ]
        return JSONResponse(
            {"correspondences": [{"correspondenceId": CID, "status": "Initialized"}], "attachmentIds": [AID]}
        )

    body = {
        "correspondence": {
            "resourceId": "my-resource",
            "sendersReference": "ref-1",
            "isConfirmationNeeded": True,
            "content": {"messageTitle": "Hei", "attachments": [{"fileName": "a.txt", "sendersReference": "a"}]},
        },
        "recipients": ["urn:altinn:organization:identifier-no:310000000"],
    }
    file = tmp_path / "a.txt"
    file.write_bytes(b"attachment body")
    with FakeAltinn(KEY.public_key(), api={f"POST {BASE}/upload": upload}) as fake:
        answer = call(
            fake, tmp_path, KEY, lambda c: c.correspondence.initialize_with_files(body, [file]), **SERVICE_OWNER
        )
    assert answer["attachmentIds"] == [AID]
    assert received["fields"] == {
        "correspondence.resourceId": "my-resource",
        "correspondence.sendersReference": "ref-1",
        "correspondence.isConfirmationNeeded": "true",
        "correspondence.content.messageTitle": "Hei",
        "correspondence.content.attachments[0].fileName": "a.txt",
        "correspondence.content.attachments[0].sendersReference": "a",
        "recipients[0]": "urn:altinn:organization:identifier-no:310000000",
    }
    assert received["files"] == [("a.txt", b"attachment body")]
    assert len(fake.requests_to(f"{BASE}/upload")) == 2


def test_initialize_posts_json(tmp_path: Path) -> None:
    seen: list[Any] = []

    async def initialize(fake: FakeAltinn, request: Request) -> Response:
        seen.append(await request.json())
        return JSONResponse({"correspondences": [], "attachmentIds": []})

    with FakeAltinn(KEY.public_key(), api={f"POST {BASE}": initialize}) as fake:
        assert call(fake, tmp_path, KEY, lambda c: c.correspondence.initialize({"a": 1}), **SERVICE_OWNER) == {
            "correspondences": [],
            "attachmentIds": [],
        }
    assert seen == [{"a": 1}]
    # Altinn's Sender policy asks an Altinn token for the write scope alone (correspondence contract §1.1).
    assert [s.token_scope for s in fake.requests_to(BASE)] == ["altinn:correspondence.write"]


def test_a_recipient_without_the_write_scope_cannot_send_and_asks_for_no_token(tmp_path: Path) -> None:
    with FakeAltinn(KEY.public_key()) as fake, pytest.raises(ConfigError, match=r"lacks altinn:correspondence\.write"):
        call(fake, tmp_path, KEY, lambda c: c.correspondence.initialize({"a": 1}))
    assert fake.seen == []
