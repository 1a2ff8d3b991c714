"""Realistic Norwegian correspondences: what a service owner sends, with real attachment bytes."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from dataclasses import dataclass

from altinn_sim.correspondence_model import Attachment, Correspondence, Correspondences
from altinn_sim.resources import Resources, org_subject
from receiver.timeutil import iso_after

SEED_SENDER_ORG = "991825827"  # Digitaliseringsdirektoratet
SEED_RESOURCE = "altinn-correspondence-test-resource-1"
SEED_RECIPIENTS = ("312345678", "313367002", "310654321")


@dataclass(frozen=True)
class Template:
    title: str
    summary: str
    body: str
    confirm: bool = False


TEMPLATES = (
    Template(
        "Vedtak om tilskudd til digitalisering",
        "Søknaden din om tilskudd er innvilget.",
        "# Vedtak\n\nVi har behandlet søknaden om tilskudd og **innvilger** den.\n\n"
        "- Beløp: 250 000 kroner\n- Utbetaling: innen 30 dager\n\nKlagefristen er tre uker fra du mottok vedtaket.",
        confirm=True,
    ),
    Template(
        "Varsel om tilsyn",
        "Vi kommer på tilsyn i neste måned.",
        "## Varsel om tilsyn\n\nVi varsler med dette om tilsyn med virksomheten.\n\n"
        "Se vedlagt *program for tilsynet*. Ta kontakt dersom tidspunktet ikke passer.",
    ),
    Template(
        "Purring: manglende innrapportering",
        "Vi har ikke mottatt rapporten for 3. termin.",
        "Vi minner om at rapporten for **3. termin** skulle vært levert.\n\n"
        "1. Logg inn i Altinn\n2. Fyll ut skjemaet\n3. Send inn innen fristen",
        confirm=True,
    ),
    Template(
        "Bekreftelse på mottatt søknad",
        "Vi har mottatt søknaden din.",
        "Takk for søknaden. Saksbehandlingstiden er for tiden **seks uker**.\n\n> Du trenger ikke gjøre noe nå.",
    ),
    Template(
        "Endring i regelverket for merverdiavgift",
        "Nye regler gjelder fra 1. januar.",
        "### Hva endres?\n\nFra 1. januar gjelder nye regler for fradrag av inngående merverdiavgift.\n\n"
        "| Sats | Fra | Til |\n|---|---|---|\n| Alminnelig | 25 % | 25 % |\n| Næringsmidler | 15 % | 14 % |",
    ),
)


def pdf(text: str) -> bytes:
    """A small, valid one-page PDF showing `text` (Helvetica, WinAnsi, so Norwegian letters survive)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 14 Tf 72 770 Td ({escaped}) Tj ET".encode("cp1252", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";").writerows(rows)
    return buffer.getvalue().encode("utf-8")


ATTACHMENT_KINDS: tuple[tuple[str, str, str, Callable[[str, random.Random], bytes]], ...] = (
    ("vedtak.pdf", "Vedtaksbrev", "application/pdf", lambda title, rng: pdf(title)),
    ("oversikt.csv", "Oversikt", "text/csv",
     lambda title, rng: _csv([["Post", "Beløp"], ["Tilskudd", str(rng.randint(1, 999) * 1000)]])),
    ("melding.xml", "Maskinlesbar melding", "application/xml",
     lambda title, rng: f'<?xml version="1.0" encoding="UTF-8"?><melding><tittel>{title}</tittel></melding>'.encode()),
)  # fmt: skip


def make_attachments(count: int, title: str, rng: random.Random) -> list[Attachment]:
    """The first `count` of the kinds agencies send: a PDF letter, a CSV, an XML."""
    return [
        Attachment(file_name, display, make(title, rng), data_type, f"vedlegg-{index + 1}")
        for index, (file_name, display, data_type, make) in enumerate(ATTACHMENT_KINDS[:count])
    ]


def seed(store: Correspondences, resources: Resources, count: int, rng: random.Random | None = None) -> None:
    """`count` published correspondences from Digdir on SEED_RESOURCE, with 0 to 3 attachments each."""
    if count == 0:
        return
    rng = rng or random.Random(3)
    resources.owners.setdefault(SEED_RESOURCE, SEED_SENDER_ORG)
    for index in range(count):
        template = TEMPLATES[index % len(TEMPLATES)]
        correspondence = Correspondence(
            resource_id=SEED_RESOURCE,
            sender_org=SEED_SENDER_ORG,
            recipient=org_subject(SEED_RECIPIENTS[index % len(SEED_RECIPIENTS)]),
            senders_reference=f"sak-2025-{1000 + index}",
            language="nb",
            title=template.title,
            summary=template.summary,
            body=template.body,
            attachments=make_attachments(index % 4, template.title, rng),
            is_confirmation_needed=template.confirm,
            due=iso_after(14 * 86400) if template.confirm else None,
            message_sender="Digitaliseringsdirektoratet",
        )
        store.add(correspondence, notify=True, push=False)
