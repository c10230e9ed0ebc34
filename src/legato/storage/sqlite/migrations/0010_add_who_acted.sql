-- Who did what, for operator actions recorded outside a run's history: the cancel a
-- worker carries out (it writes cancel_requested with this), who answered a human task,
-- and who last redrove a dead letter, and when.
ALTER TABLE runs ADD COLUMN cancel_by TEXT;
ALTER TABLE tasks ADD COLUMN completed_by TEXT;
ALTER TABLE deliveries ADD COLUMN redriven_at REAL;
ALTER TABLE deliveries ADD COLUMN redriven_by TEXT;
