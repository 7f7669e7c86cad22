-- TimescaleDB hypertables take INSERT statement triggers with transition tables (2.18+;
-- 0020 relies on it for the rollups), so inserts are logged as on plain PostgreSQL: one
-- change-log row per writing statement instead of a plpgsql call and a heap tuple per
-- reading. Measured on the live ingest benchmark: the per-row trigger was 2.6 s of
-- PostgreSQL's 18 s for 440,000 register readings.
-- Updates keep the row trigger: they are rare (corrections, VEE marks), and may touch
-- rows of compressed chunks.
DROP TRIGGER billing_changes_ins ON register_readings;
CREATE TRIGGER billing_changes_ins AFTER INSERT ON register_readings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION askue_billing_log_rows();
CREATE TRIGGER billing_changes_upd AFTER UPDATE ON register_readings
    FOR EACH ROW EXECUTE FUNCTION askue_billing_log_row();
