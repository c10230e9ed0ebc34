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
    error_pos        INTEGER                    -- history record whose data is the error
) WITHOUT ROWID;

CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);
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
    completed_at REAL
);

CREATE INDEX tasks_by_status ON tasks (status, assignee, created_at);
