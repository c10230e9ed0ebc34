-- A worker firing an expectation's deadline holds the instance for a few seconds, so
-- workers firing deadlines at once take different instances instead of racing for each.
ALTER TABLE expectations ADD COLUMN claimed_until DOUBLE PRECISION;
