-- 0002: durable waiting: signals, human tasks, and the parent of a child run.

ALTER TABLE runs ADD COLUMN parent_run_id TEXT;

-- From 0002 on, a NULL wake_at means "waiting for an event" (not "due now"): every
-- unfinished run that was due stays due.
UPDATE runs SET wake_at = updated_at
    WHERE wake_at IS NULL AND status NOT IN ('completed', 'failed', 'compensated',
                                             'compensation_failed', 'cancelled', 'blocked');

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
