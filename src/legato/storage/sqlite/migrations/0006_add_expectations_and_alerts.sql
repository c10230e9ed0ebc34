-- 0006: expectations over flows, and alerts. One row per expectation instance (opened
-- by one trigger event for one key), the awaited events that came before any trigger
-- wanted them (so a trigger arriving out of order still counts them), and the alerts.
-- Runs keep the trace context their spans continue (OpenTelemetry), across processes.

ALTER TABLE runs ADD COLUMN traceparent TEXT;

CREATE TABLE expectations (
    expectation    TEXT NOT NULL,
    instance       TEXT NOT NULL,
    key            TEXT NOT NULL,
    status         TEXT NOT NULL,
    missing        BLOB NOT NULL,
    trigger_seq    INTEGER NOT NULL,
    correlation_id TEXT,
    opened_at      REAL NOT NULL,
    deadline_at    REAL NOT NULL,
    closed_at      REAL,
    closed_by      INTEGER,
    violation_id   TEXT,
    awaited        BLOB NOT NULL,
    PRIMARY KEY (expectation, instance)
) WITHOUT ROWID;

CREATE INDEX expectations_by_key ON expectations (expectation, key, opened_at);
CREATE INDEX expectations_due ON expectations (deadline_at) WHERE status = 'open';
CREATE INDEX expectations_by_opened ON expectations (opened_at);
CREATE INDEX expectations_by_correlation ON expectations (correlation_id, opened_at);

CREATE TABLE expectation_arrivals (
    expectation TEXT NOT NULL,
    key         TEXT NOT NULL,
    role        TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    at          REAL NOT NULL,
    PRIMARY KEY (expectation, key, role, seq)
) WITHOUT ROWID;

-- Alerts: one row per (kind, subject), raised once per occurrence, resolved when the
-- cause clears.
CREATE TABLE alerts (
    alert_id    TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    status      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    details     BLOB NOT NULL,
    raised_at   REAL NOT NULL,
    resolved_at REAL,
    times       INTEGER NOT NULL,
    event_id    TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX alerts_by_status ON alerts (status, raised_at);
