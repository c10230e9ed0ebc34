-- 0004: a run's error stored once. error_pos names the record of the run's history whose
-- data is its error (run_failed, run_blocked), instead of a copy of it in error; error
-- keeps what no single record holds (and every error written before this migration).

ALTER TABLE runs ADD COLUMN error_pos INTEGER;
