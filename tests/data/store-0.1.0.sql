-- A store written by altinn-receiver 0.1.0 (the release before schema migrations): its schema as that release
-- created it on every open, three events (pending, done, dead) and a validation handshake. See README.md.
BEGIN TRANSACTION;
CREATE TABLE catchup_cursors (
        resource        TEXT NOT NULL,
        subject         TEXT NOT NULL DEFAULT '',
        type            TEXT NOT NULL DEFAULT '',
        after           TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        last_success_at TEXT NOT NULL DEFAULT '',
        stuck_since     TEXT NOT NULL DEFAULT '',
        stuck_pushes    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (resource, subject, type)
    );
CREATE TABLE correspondence_events (
        event_id          TEXT PRIMARY KEY,
        correspondence_id TEXT NOT NULL DEFAULT '',
        resourceinstance  TEXT NOT NULL DEFAULT '',
        type              TEXT NOT NULL,
        time              TEXT NOT NULL DEFAULT '',
        received_at       TEXT NOT NULL
    );
CREATE TABLE correspondences (
        correspondence_id TEXT PRIMARY KEY,
        resource_id       TEXT NOT NULL DEFAULT '',
        sender            TEXT NOT NULL DEFAULT '',
        recipient         TEXT NOT NULL DEFAULT '',
        status            TEXT NOT NULL DEFAULT '',
        message_title     TEXT NOT NULL DEFAULT '',
        details           TEXT NOT NULL DEFAULT '{}',
        first_event_at    TEXT NOT NULL,
        updated_at        TEXT NOT NULL
    );
CREATE TABLE inbox (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        id               TEXT NOT NULL UNIQUE,
        type             TEXT NOT NULL,
        source           TEXT NOT NULL,
        subject          TEXT NOT NULL DEFAULT '',
        resource         TEXT NOT NULL DEFAULT '',
        resourceinstance TEXT NOT NULL DEFAULT '',
        time             TEXT NOT NULL DEFAULT '',
        raw              TEXT NOT NULL,
        received_at      TEXT NOT NULL,
        channel          TEXT NOT NULL,
        status           TEXT NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT NOT NULL DEFAULT '',
        next_attempt_at  TEXT NOT NULL DEFAULT '',
        lease_until      TEXT NOT NULL DEFAULT '',
        lease_owner      TEXT NOT NULL DEFAULT '',
        updated_at       TEXT NOT NULL
    );
INSERT INTO "inbox" VALUES(1,'7f0e6d64-3d1b-4a43-9a55-2b0f0c1d0001','no.altinn.correspondence.correspondencepublished','https://platform.tt02.altinn.no/correspondence/api/v1/correspondence','','urn:altinn:resource:legacy-store','0199a1b2-0000-7000-8000-000000000000','2026-01-05T10:00:00.000000Z','{"specversion":"1.0","id":"7f0e6d64-3d1b-4a43-9a55-2b0f0c1d0001","type":"no.altinn.correspondence.correspondencepublished","source":"https://platform.tt02.altinn.no/correspondence/api/v1/correspondence","resource":"urn:altinn:resource:legacy-store","resourceinstance":"0199a1b2-0000-7000-8000-000000000000","time":"2026-01-05T10:00:00.000000Z"}','2026-12-01T17:24:58.057663Z','push','pending',0,'','','','','2026-12-01T17:24:58.057663Z');
INSERT INTO "inbox" VALUES(2,'7f0e6d64-3d1b-4a43-9a55-2b0f0c1d0002','no.altinn.correspondence.correspondencereceiverread','https://platform.tt02.altinn.no/correspondence/api/v1/correspondence','','urn:altinn:resource:legacy-store','0199a1b2-0000-7000-8000-000000000001','2026-01-05T10:00:01.000000Z','{"specversion":"1.0","id":"7f0e6d64-3d1b-4a43-9a55-2b0f0c1d0002","type":"no.altinn.correspondence.correspondencereceiverread","source":"https://platform.tt02.altinn.no/correspondence/api/v1/correspondence","resource":"urn:altinn:resource:legacy-store","resourceinstance":"0199a1b2-0000-7000-8000-000000000001","time":"2026-01-05T10:00:01.000000Z"}','2026-12-01T17:24:58.063642Z','push','done',1,'','','','','2026-12-01T17:24:58.063642Z');
INSERT INTO "inbox" VALUES(3,'7f0e6d64-3d1b-4a43-9a55-2b0f0c1d0003','no.altinn.correspondence.correspondencepublished','https://platform.tt02.altinn.no/correspondence/api/v1/correspondence','','urn:altinn:resource:legacy-store','0199a1b2-0000-7000-8000-000000000002','2026-01-05T10:00:02.000000Z','{"specversion":"1.0","id":"7f0e6d64-3d1b-4a43-9a55-2b0f0c1d0003","type":"no.altinn.correspondence.correspondencepublished","source":"https://platform.tt02.altinn.no/correspondence/api/v1/correspondence","resource":"urn:altinn:resource:legacy-store","resourceinstance":"0199a1b2-0000-7000-8000-000000000002","time":"2026-01-05T10:00:02.000000Z"}','2026-12-01T17:24:58.073536Z','push','dead',1,'HTTP 404','','','','2026-12-01T17:24:58.073536Z');
CREATE TABLE receiver_state (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
CREATE TABLE subscriptions (
        altinn_id        INTEGER PRIMARY KEY,
        resource         TEXT NOT NULL,
        subject          TEXT NOT NULL DEFAULT '',
        type             TEXT NOT NULL DEFAULT '',
        endpoint         TEXT NOT NULL,
        code_fingerprint TEXT NOT NULL DEFAULT '',
        state            TEXT NOT NULL,
        created_at       TEXT NOT NULL,
        validated_at     TEXT NOT NULL DEFAULT '',
        superseded_at    TEXT NOT NULL DEFAULT '',
        updated_at       TEXT NOT NULL
    );
CREATE TABLE validations (
        event_id        TEXT PRIMARY KEY,
        subscription_id TEXT NOT NULL DEFAULT '',
        source          TEXT NOT NULL,
        received_at     TEXT NOT NULL
    );
INSERT INTO "validations" VALUES('0b8c1b7e-validation','52107','https://platform.tt02.altinn.no/events/api/v1/subscriptions/52107','2026-12-01T17:24:58.085476Z');
CREATE INDEX inbox_status ON inbox (status, next_attempt_at);
CREATE INDEX inbox_instance ON inbox (resourceinstance, status);
CREATE INDEX inbox_updated ON inbox (updated_at);
CREATE INDEX inbox_channel ON inbox (channel, received_at);
CREATE INDEX inbox_open_by_time ON inbox (COALESCE(julianday(NULLIF(time, '')), julianday(received_at)), seq) WHERE status IN ('pending', 'retrying', 'processing');
CREATE INDEX correspondence_events_by_correspondence ON correspondence_events (correspondence_id, time);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('inbox',3);
COMMIT;
PRAGMA user_version = 1;
