-- Nobody pages the value tables by id (billing keeps its own change log), and
-- each index costs every ingested row an extra index insert.
DROP INDEX IF EXISTS register_readings_id_idx;
DROP INDEX IF EXISTS intervals_id_idx;
