-- 0003: which workflows each worker serves, so describe() can say that no live worker
-- serves a pending run's workflow. NULL for a worker registered before (not known).

ALTER TABLE workers ADD COLUMN workflows BLOB;
