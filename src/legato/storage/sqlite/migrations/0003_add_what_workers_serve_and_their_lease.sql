-- 0003: what each worker serves and how long its lease is, so describe() can say that no
-- live worker serves a pending run's workflow, and when a silent worker is presumed dead
-- by its own lease. NULL for a worker registered before (not known).

ALTER TABLE workers ADD COLUMN workflows BLOB;
ALTER TABLE workers ADD COLUMN lease_s REAL;
