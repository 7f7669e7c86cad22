-- Change log triggers on plain PostgreSQL: one INSERT per statement from the
-- transition table, so a COPY-and-merge batch pays one extra statement, not one
-- trigger call per row. Rows an ON CONFLICT DO NOTHING skipped are not in new_rows.
CREATE TRIGGER billing_changes_ins AFTER INSERT ON register_readings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION askue_billing_log_rows();
CREATE TRIGGER billing_changes_upd AFTER UPDATE ON register_readings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION askue_billing_log_rows();
