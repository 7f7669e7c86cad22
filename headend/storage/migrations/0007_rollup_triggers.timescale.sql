-- On TimescaleDB the rollups are continuous aggregates that follow the data by
-- themselves; the daily consumption per organisation / house / resource / zone /
-- meter class is a view of the same name and columns as on plain PostgreSQL.
CREATE VIEW consumption_daily AS
SELECT coalesce(m.org_id, 0) AS org_id, coalesce(m.site_id, 0) AS site_id, m.resource,
       CASE WHEN m.resource = 'electricity' THEN split_part(r.obis, '.', 5)::int ELSE 0 END AS zone,
       m.is_balance, r.day,
       sum(askue_bucket_consumption(r.last_value, coalesce(r.prev_value, r.first_value), m.digits, m.multiplier))
           AS value,
       count(*)::integer AS meters
FROM rollup_register_daily r JOIN meters m ON m.id = r.meter_id
WHERE askue_is_consumption_channel(r.obis)
GROUP BY 1, 2, 3, 4, 5, 6;

-- Same entry point as on plain PostgreSQL: nothing to rebuild, the aggregates refresh.
CREATE FUNCTION askue_rollup_rebuild(p_meter bigint, p_obis text, lo timestamptz, hi timestamptz)
RETURNS void LANGUAGE sql AS $$ SELECT $$;

CREATE FUNCTION askue_consumption_compact() RETURNS bigint LANGUAGE sql AS $$ SELECT 0::bigint $$;
