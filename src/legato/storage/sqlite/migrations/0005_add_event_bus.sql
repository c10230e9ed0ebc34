-- 0005: the event bus. The log of published events, the subscriptions registered on the
-- database (and a version that moves when they change, so publishers know their fan-out
-- is current), and one delivery row per (subscription, event). Runs learn their
-- correlation id, which the events they publish carry.

ALTER TABLE runs ADD COLUMN correlation_id TEXT;

CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    source         TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    type           TEXT NOT NULL,
    subject        TEXT,
    correlation_id TEXT,
    causation_id   TEXT,
    run_id         TEXT,
    call_key       TEXT,
    reply_types    BLOB,
    routed         INTEGER NOT NULL,
    recorded_at    REAL NOT NULL,
    event          BLOB NOT NULL,
    UNIQUE (event_id, source)
);

CREATE INDEX events_by_type ON events (type, seq);
CREATE INDEX events_by_correlation ON events (correlation_id, seq);
CREATE INDEX events_by_run ON events (run_id, seq) WHERE run_id IS NOT NULL;
CREATE INDEX events_unrouted ON events (seq) WHERE routed = 0;
CREATE INDEX events_by_recorded ON events (recorded_at);

CREATE TABLE subscriptions (
    name          TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    pattern       BLOB NOT NULL,
    ordered_by    TEXT,
    registered_at REAL NOT NULL
);

CREATE TABLE registry (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);

INSERT INTO registry (id, version) VALUES (1, 0);

CREATE TABLE deliveries (
    subscription TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    due_at       REAL,
    ordering_key TEXT,
    owner        TEXT,
    error        BLOB,
    replay       INTEGER NOT NULL DEFAULT 0,
    updated_at   REAL NOT NULL,
    PRIMARY KEY (seq, subscription)
) WITHOUT ROWID;

CREATE INDEX deliveries_due ON deliveries (due_at) WHERE status = 'pending' AND owner IS NULL;
CREATE INDEX deliveries_by_key ON deliveries (subscription, ordering_key, seq)
    WHERE status = 'pending' AND ordering_key IS NOT NULL;
CREATE INDEX deliveries_dead ON deliveries (subscription, seq) WHERE status = 'dead';
CREATE INDEX deliveries_owned ON deliveries (owner) WHERE status = 'pending' AND owner IS NOT NULL;
