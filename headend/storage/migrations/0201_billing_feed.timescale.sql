-- TimescaleDB hypertables take no transition tables: a row-level trigger instead.
CREATE TRIGGER billing_changes_ins AFTER INSERT OR UPDATE ON register_readings
    FOR EACH ROW EXECUTE FUNCTION askue_billing_log_row();
