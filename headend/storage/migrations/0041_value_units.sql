-- Units and quarantine on the ingest side (registry issue).
--
-- Values are stored in the canonical unit of their resource and quantity (kWh, kvarh, m³,
-- Гкал; headend/units.py, docs/units.md). A value the ingest converted keeps what the gateway
-- sent: orig_value in orig_unit. NULL in both: the value arrived in the canonical unit. One
-- column per statement and no default or constraint, so TimescaleDB adds them to compressed
-- chunks too.
ALTER TABLE register_readings ADD COLUMN orig_value double precision;
ALTER TABLE register_readings ADD COLUMN orig_unit text;
ALTER TABLE intervals ADD COLUMN orig_value double precision;
ALTER TABLE intervals ADD COLUMN orig_unit text;
ALTER TABLE instant_values ADD COLUMN orig_value double precision;
ALTER TABLE instant_values ADD COLUMN orig_unit text;

-- Values a gateway sent for a meter bound to another gateway (or removed from it): never
-- stored on that meter, kept here whole as sent (value in the gateway's unit) with the
-- reason, until an operator releases them to the meter the registry now names or discards
-- them. Why a table and not dead letters: docs/headend-registry.md.
CREATE TABLE quarantined_values (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    reason         text NOT NULL CHECK (reason IN ('foreign_gateway', 'meter_removed')),
    gateway_id     text NOT NULL,            -- who sent it
    gateway_code   text NOT NULL,            -- the meter code that gateway used
    meter_id       bigint REFERENCES meters(id),  -- the registry meter with that code, bound elsewhere
    bound_gateway  text,                     -- the gateway that meter is bound to
    kind           text NOT NULL,
    obis           text NOT NULL,
    ts             timestamptz NOT NULL,
    ts_source      text NOT NULL,
    received_at    timestamptz NOT NULL,
    value          double precision NOT NULL,
    unit           text NOT NULL,
    quality        text NOT NULL,
    reasons        text[],
    seq            bigint,
    period_s       integer,
    archive        text,
    state          text NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'released', 'discarded')),
    decided_by     text,
    decided_at     timestamptz,
    released_to    bigint REFERENCES meters(id)
);
CREATE INDEX quarantined_values_held_idx ON quarantined_values (gateway_id, gateway_code) WHERE state = 'held';
CREATE INDEX quarantined_values_meter_idx ON quarantined_values (meter_id, quarantined_at);
