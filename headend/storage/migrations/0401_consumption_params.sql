-- Daily consumption per organisation and house (consumption_daily, migrations 0007/0020)
-- with the meter's parameters in force on each day: digit capacity, CT·VT multiplier,
-- organisation and house come from the meters row for days from meters.params_since on
-- (the latest version; every day when params_since is NULL) and from meter_params for
-- earlier days. The lookup runs only for such days (a one-time filter on the outer row),
-- so meters with one version cost what they did.

CREATE OR REPLACE FUNCTION askue_consumption_sql(src text, meters_src text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT format($q$
        INSERT INTO rollup_consumption_pending (org_id, site_id, resource, zone, is_balance, day, value, meters)
        SELECT org_id, site_id, resource, zone, is_balance, day, sum(value), sum(sign)
        FROM (
            SELECT coalesce(CASE WHEN v.meter_id IS NULL THEN m.org_id ELSE v.org_id END, 0) AS org_id,
                   coalesce(CASE WHEN v.meter_id IS NULL THEN m.site_id ELSE v.site_id END, 0) AS site_id,
                   m.resource,
                   CASE WHEN m.resource = 'electricity' THEN split_part(d.obis, '.', 5)::int ELSE 0 END AS zone,
                   m.is_balance, d.day, d.sign,
                   d.sign * askue_bucket_consumption(d.last_value, d.prev,
                       CASE WHEN v.meter_id IS NULL THEN m.digits ELSE v.digits END,
                       CASE WHEN v.meter_id IS NULL THEN m.multiplier ELSE v.multiplier END) AS value
            FROM (%1$s) d JOIN %2$s m ON m.id = d.meter_id
            LEFT JOIN LATERAL (SELECT p.meter_id, p.org_id, p.site_id, p.digits, p.multiplier FROM meter_params p
                               WHERE m.params_since IS NOT NULL AND d.day < m.params_since
                                 AND p.meter_id = m.id AND p.valid_from <= d.day
                               ORDER BY p.valid_from DESC LIMIT 1) v ON TRUE
            WHERE askue_is_consumption_channel(d.obis)) c
        GROUP BY 1, 2, 3, 4, 5, 6
        HAVING sum(sign) <> 0 OR sum(value) <> 0$q$,
        src, meters_src)
$$;

-- A direct change of a meter's current attributes moves its days from the old attributes
-- to the new, as before; days under an older dated version stay where they are (both sides
-- of the move read them from meter_params). The registry service changes dated parameters
-- itself (askue_consumption_rerate around the change) and sets askue.registry_rerate so
-- that this trigger does not move the days a second time.
CREATE OR REPLACE FUNCTION askue_consumption_meter_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cols text := 'meter_id, obis, day, last_value, coalesce(prev_value, first_value) AS prev';
BEGIN
    IF current_setting('askue.registry_rerate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    EXECUTE askue_consumption_sql('SELECT -1 AS sign, ' || cols || ' FROM rollup_register_daily WHERE meter_id = $1',
                                  '(SELECT ($2::meters).*) ') USING OLD.id, OLD;
    EXECUTE askue_consumption_sql('SELECT 1 AS sign, ' || cols || ' FROM rollup_register_daily WHERE meter_id = $1',
                                  '(SELECT ($2::meters).*) ') USING NEW.id, NEW;
    RETURN NULL;
END $$;

-- Take a meter's days from `from_day` on out of (sign -1) or into (sign 1) the daily sums,
-- under the parameters in force now: the registry service calls it with -1 before a dated
-- change and with 1 after it, in the same transaction.
CREATE FUNCTION askue_consumption_rerate(p_meter bigint, from_day date, sign integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE askue_consumption_sql(
        format('SELECT %s AS sign, meter_id, obis, day, last_value, coalesce(prev_value, first_value) AS prev '
               'FROM rollup_register_daily WHERE meter_id = $1 AND day >= $2', sign), 'meters')
        USING p_meter, from_day;
END $$;

-- The parameter version of a meter on a day (readers outside the hot paths).
CREATE FUNCTION askue_meter_params_at(p_meter bigint, p_day date) RETURNS meter_params LANGUAGE sql STABLE AS $$
    SELECT * FROM meter_params WHERE meter_id = p_meter AND valid_from <= p_day ORDER BY valid_from DESC LIMIT 1
$$;
