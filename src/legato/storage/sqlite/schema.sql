-- Legato's schema on SQLite: the current shape, readable top to bottom.
-- Migrations in migrations/ must produce exactly this (tests/migration checks it).
-- Times are REAL Unix seconds (UTC). Payloads are JSON (orjson) in BLOBs.

-- One row per workflow run: identity, status and outcome.
CREATE TABLE runs (
    run_id           TEXT PRIMARY KEY,
    workflow         TEXT NOT NULL,
    status           TEXT NOT NULL,
    input            BLOB NOT NULL,             -- JSON list of positional arguments
    output           BLOB,                      -- JSON result once completed
    error            BLOB,                      -- JSON error no single record holds (see error_pos)
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    deadline_at      REAL,                      -- workflow timeout, if any
    wake_at          REAL,                      -- due from this time; NULL: waits for an event
    owner            TEXT,                      -- worker executing the run, NULL if none
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    parent_run_id    TEXT,                      -- the run that started this one as a child
    error_pos        INTEGER,                   -- history record whose data is the error
    correlation_id   TEXT,                      -- the business transaction; NULL: run_id
    traceparent      TEXT,                      -- W3C trace context its spans continue
    cancel_by        TEXT                       -- who asked for the cancel a worker carries out
) WITHOUT ROWID;

CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_workflow ON runs (workflow, created_at);
CREATE INDEX runs_by_correlation ON runs (correlation_id, created_at);
-- Claiming scans only unfinished runs.
CREATE INDEX runs_unfinished ON runs (owner, wake_at)
    WHERE status NOT IN ('completed', 'failed', 'compensated', 'compensation_failed',
                         'cancelled', 'blocked');

-- Append-only history of every run: steps, retries, values, compensations, outcome.
CREATE TABLE history (
    run_id   TEXT NOT NULL,
    pos      INTEGER NOT NULL,                  -- 1, 2, 3 ... within the run
    kind     TEXT NOT NULL,                     -- see legato.model.history.EventKind
    key      TEXT,                              -- the call's sequence number ("3", "3.1")
    name     TEXT,                              -- step name
    attempt  INTEGER NOT NULL DEFAULT 0,
    data     BLOB,                              -- JSON
    at       REAL NOT NULL,
    PRIMARY KEY (run_id, pos)                   -- a second writer of the same run conflicts
) WITHOUT ROWID;

-- Worker processes, for leases: runs of a dead worker are released to the living.
CREATE TABLE workers (
    worker_id    TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    workflows    BLOB,                          -- JSON list of the workflow names it serves
    lease_s      REAL                           -- silent this long, it is presumed dead
);

-- Workflow names registered by apps on this database, so clients can check a name.
CREATE TABLE workflows (
    name          TEXT PRIMARY KEY,
    registered_at REAL NOT NULL
);

-- Signals sent to runs, kept until consumed; a run's history says which it consumed.
CREATE TABLE signals (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,  -- delivery order
    run_id  TEXT NOT NULL,
    name    TEXT NOT NULL,
    payload BLOB,                               -- JSON
    sent_at REAL NOT NULL
);

CREATE INDEX signals_by_run ON signals (run_id, id);

-- Human tasks: the inbox. A completed task's response reaches its run as a signal.
CREATE TABLE tasks (
    task_id      TEXT PRIMARY KEY,              -- "<run_id>:<call key>"
    run_id       TEXT NOT NULL,
    name         TEXT NOT NULL,
    data         BLOB,                          -- JSON shown to the person
    assignee     TEXT,
    form         BLOB,                          -- JSON Schema the response must match
    status       TEXT NOT NULL,                 -- open | completed | expired | cancelled
    response     BLOB,
    created_at   REAL NOT NULL,
    due_at       REAL,
    completed_at REAL,
    completed_by TEXT                           -- who answered it, when known
);

CREATE INDEX tasks_by_status ON tasks (status, assignee, created_at);

-- The event log: every published event, kept until pruned (events prune).
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,  -- position in this database's log
    source         TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    type           TEXT NOT NULL,
    subject        TEXT,
    correlation_id TEXT,
    causation_id   TEXT,                      -- the id of the event that caused this one
    run_id         TEXT,                      -- the run that published it, if any
    call_key       TEXT,                      -- the run's call (or step) that published it
    reply_types    BLOB,                      -- JSON list: a request awaiting these replies
    routed         INTEGER NOT NULL,          -- deliveries made at publish; 0: unrouted
    recorded_at    REAL NOT NULL,
    event          BLOB NOT NULL,             -- the CloudEvent, structured JSON
    UNIQUE (event_id, source)                 -- de-duplication; replies find requests by id
);

CREATE INDEX events_by_type ON events (type, seq);
CREATE INDEX events_by_correlation ON events (correlation_id, seq);
CREATE INDEX events_by_run ON events (run_id, seq) WHERE run_id IS NOT NULL;
CREATE INDEX events_unrouted ON events (seq) WHERE routed = 0;
CREATE INDEX events_by_recorded ON events (recorded_at);

-- Subscriptions registered by apps on this database: publishers route by these.
CREATE TABLE subscriptions (
    name          TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,              -- handler | trigger
    pattern       BLOB NOT NULL,              -- JSON: a type pattern or a content filter
    ordered_by    TEXT,                       -- FIFO per this key ("subject", "data.x")
    registered_at REAL NOT NULL
);

-- One row: the version of the subscriptions, moved by every change to them. A publish
-- names the version it routed by, and conflicts if it moved meanwhile.
CREATE TABLE registry (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);

INSERT INTO registry (id, version) VALUES (1, 0);

-- One row per (subscription, event): delivery rows, never a "position > last seen" cursor.
CREATE TABLE deliveries (
    subscription TEXT NOT NULL,
    seq          INTEGER NOT NULL,            -- events.seq
    status       TEXT NOT NULL,               -- pending | done | dead
    attempts     INTEGER NOT NULL DEFAULT 0,  -- handler calls that ended
    due_at       REAL,                        -- pending: due from this time
    ordering_key TEXT,                        -- FIFO per key when the subscription is ordered
    owner        TEXT,                        -- the worker delivering it now
    error        BLOB,                        -- JSON: the last failure
    replay       INTEGER NOT NULL DEFAULT 0,  -- delivered again by events replay
    updated_at   REAL NOT NULL,
    redriven_at  REAL,                        -- the last redrive of a dead letter
    redriven_by  TEXT,                        -- who redrove it, when known
    PRIMARY KEY (seq, subscription)
) WITHOUT ROWID;

-- Claims scan only what is due and free; FIFO keys look only at pending rows of their key.
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE status = 'pending' AND owner IS NULL;
CREATE INDEX deliveries_by_key ON deliveries (subscription, ordering_key, seq)
    WHERE status = 'pending' AND ordering_key IS NOT NULL;
CREATE INDEX deliveries_dead ON deliveries (subscription, seq) WHERE status = 'dead';
CREATE INDEX deliveries_owned ON deliveries (owner) WHERE status = 'pending' AND owner IS NOT NULL;

-- Expectation instances: one per (expectation, trigger event), for the trigger's key.
CREATE TABLE expectations (
    expectation    TEXT NOT NULL,
    instance       TEXT NOT NULL,             -- the trigger event's source and id
    key            TEXT NOT NULL,             -- correlation id, or the configured key
    status         TEXT NOT NULL,             -- open | fulfilled | violated | cancelled | late_fulfilled
    missing        BLOB NOT NULL,             -- JSON list: indexes of awaited patterns not seen
    trigger_seq    INTEGER NOT NULL,          -- events.seq of the trigger
    correlation_id TEXT,
    opened_at      REAL NOT NULL,
    deadline_at    REAL NOT NULL,
    closed_at      REAL,
    closed_by      INTEGER,                   -- events.seq of the event that closed it
    violation_id   TEXT,                      -- id of its legato.expectation.violated event
    awaited        BLOB NOT NULL,             -- JSON list: the then patterns, as text
    claimed_until  REAL,                      -- a worker firing its deadline holds it until then
    PRIMARY KEY (expectation, instance)
) WITHOUT ROWID;

-- Awaited events look up their key's instances; the deadline timer scans open ones only.
CREATE INDEX expectations_by_key ON expectations (expectation, key, opened_at);
CREATE INDEX expectations_due ON expectations (deadline_at) WHERE status = 'open';
CREATE INDEX expectations_by_opened ON expectations (opened_at);
CREATE INDEX expectations_by_correlation ON expectations (correlation_id, opened_at);

-- Awaited (or unless) events seen before a trigger wanted them (out-of-order arrival).
CREATE TABLE expectation_arrivals (
    expectation TEXT NOT NULL,
    key         TEXT NOT NULL,
    role        TEXT NOT NULL,                -- then:<index> | unless
    seq         INTEGER NOT NULL,             -- events.seq
    at          REAL NOT NULL,                -- when the event was recorded
    PRIMARY KEY (expectation, key, role, seq)
) WITHOUT ROWID;

-- Alerts: one row per (kind, subject), raised once per occurrence, resolved when the
-- cause clears.
CREATE TABLE alerts (
    alert_id    TEXT PRIMARY KEY,             -- <kind>:<subject>
    kind        TEXT NOT NULL,                -- stuck_run | run_needs_operator | ...
    subject     TEXT NOT NULL,                -- a run id, a delivery, an event type, ...
    status      TEXT NOT NULL,                -- raised | resolved
    summary     TEXT NOT NULL,
    details     BLOB NOT NULL,                -- JSON object
    raised_at   REAL NOT NULL,
    resolved_at REAL,
    times       INTEGER NOT NULL,             -- how often it was raised
    event_id    TEXT NOT NULL                 -- its latest legato.alert.* event
) WITHOUT ROWID;

CREATE INDEX alerts_by_status ON alerts (status, raised_at);

-- Bearer tokens of the HTTP API and the console: their SHA-256 digest, never the secret.
CREATE TABLE api_tokens (
    name       TEXT PRIMARY KEY,              -- who did it, in operator actions' records
    digest     TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the secret
    scope      TEXT NOT NULL,                 -- read | operate | admin
    created_at REAL NOT NULL,
    revoked_at REAL
) WITHOUT ROWID;
