-- Which transaction last changed a meter's stored register readings, and which one changed
-- them before it. A writer that remembers what it stored itself (the ingest's VEE hook keeps
-- each channel's latest reading in memory) may trust that memory for a meter only while the
-- transaction before its own is the one it remembers: any other writer of the meter's
-- registers (a second ingest worker, a typed reading, a correction, an exchange act's
-- deletion) shows up here. A rolled-back writer leaves nothing behind, so a memory built in
-- one can never match. A narrow table of its own: the meters rows are wide and indexed, and
-- every batch would rewrite each of its meters' rows once more.
CREATE TABLE meter_register_writes (
    meter_id   bigint PRIMARY KEY,  -- as the value tables: no foreign key to meters
    mark       bigint NOT NULL,
    prev_mark  bigint
) WITH (fillfactor = 50);  -- room on each page for its rows' next versions (HOT updates)

-- The writing transaction's mark: its id and start time, hashed. The id alone can come again
-- (a standby promoted after losing the old primary's last transactions, another cluster a
-- process wrote to before); with the start time to the microsecond it does not.
CREATE FUNCTION askue_write_mark() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT hashtextextended(txid_current()::text || ':' || (extract(epoch FROM now()) * 1000000)::bigint::text, 0)
$$;

-- Rows are taken in meter order: two writers of the same meters queue instead of deadlocking.
-- An update, not an upsert (measured: the upsert cost half again as much per batch); the rare
-- meter without a row yet gets one after.
CREATE FUNCTION askue_mark_register_writes(ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    me bigint := askue_write_mark();
    n bigint;
BEGIN
    UPDATE meter_register_writes w
    SET prev_mark = CASE WHEN w.mark = me THEN w.prev_mark ELSE w.mark END, mark = me
    WHERE w.meter_id = ANY (ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n < cardinality(ids) THEN
        INSERT INTO meter_register_writes (meter_id, mark)
        SELECT id, me FROM unnest(ids) AS u(id) ORDER BY 1 ON CONFLICT (meter_id) DO NOTHING;
    END IF;
END $$;

CREATE FUNCTION askue_registers_written() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM askue_mark_register_writes(ARRAY(SELECT DISTINCT meter_id FROM new_rows ORDER BY 1));
    RETURN NULL;
END $$;

CREATE FUNCTION askue_register_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM askue_mark_register_writes(ARRAY(
        SELECT DISTINCT id FROM unnest(ARRAY[OLD.meter_id, CASE WHEN TG_OP = 'UPDATE' THEN NEW.meter_id END]) AS u(id)
        WHERE id IS NOT NULL ORDER BY 1));
    RETURN NULL;
END $$;

-- Named to fire after rollup_ins: a writer waits for another at the rollup rows first, as before.
CREATE TRIGGER tails_ins AFTER INSERT ON register_readings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION askue_registers_written();
-- Marks and reasons change nothing a memory of values holds.
CREATE TRIGGER tails_upd AFTER UPDATE OF meter_id, obis, ts, value ON register_readings
    FOR EACH ROW EXECUTE FUNCTION askue_register_changed();
CREATE TRIGGER tails_del AFTER DELETE ON register_readings
    FOR EACH ROW EXECUTE FUNCTION askue_register_changed();
