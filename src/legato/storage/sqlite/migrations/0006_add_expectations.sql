-- 0006: expectations over flows. One row per instance (an expectation opened by one
-- trigger event for one key), and the awaited events that came before any trigger
-- wanted them, so a trigger arriving out of order still counts them.

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
