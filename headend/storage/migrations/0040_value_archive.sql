-- Register values the meter itself kept at a day or month boundary (contract Value.archive:
-- 'day_start' / 'month_start'), read from its memory, not a live poll: billing prefers them
-- at period boundaries, and VEE does not take their 00:00 stamp for the meter's clock.
-- NULL for live reads. No CHECK: the ingest's contract decoder admits only those two names,
-- and a constraint would stop TimescaleDB adding the column to compressed chunks.
ALTER TABLE register_readings ADD COLUMN archive text;
