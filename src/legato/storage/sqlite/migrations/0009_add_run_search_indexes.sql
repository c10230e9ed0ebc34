-- Runs listed by workflow, and the runs of one business transaction, newest first
-- (the HTTP API's and the console's run search).
CREATE INDEX runs_by_workflow ON runs (workflow, created_at);
CREATE INDEX runs_by_correlation ON runs (correlation_id, created_at);
