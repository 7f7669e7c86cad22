-- Registry with history and identity (registry issue): dated meter parameters, bindings of
-- meters to gateways, install / exchange / removal acts, serial checks. See
-- docs/headend-registry.md.

-- Transformer ratios (Ктт, Ктн) whose product is the multiplier; the latest parameter
-- version (mirrored here for every reader of `meters`); since when that version is in
-- force when the meter has older ones (NULL: one version for the meter's whole life).
-- serial_hold_*: the serial the meter reported differs from the registry's; its values
-- are held from billing (reason serial_mismatch) until an operator confirms.
ALTER TABLE meters
    ADD COLUMN ct_ratio double precision CHECK (ct_ratio > 0),
    ADD COLUMN vt_ratio double precision CHECK (vt_ratio > 0),
    ADD COLUMN params_since date,
    ADD COLUMN serial_hold_at timestamptz,
    ADD COLUMN serial_hold_reported text;

-- Dated parameter versions: each row is what is in force from `valid_from` (a local day)
-- until the next row's. The first row of a meter starts at 0001-01-01 (its whole past).
CREATE TABLE meter_params (
    meter_id     bigint NOT NULL REFERENCES meters(id) ON DELETE CASCADE,
    valid_from   date NOT NULL,
    multiplier   double precision NOT NULL CHECK (multiplier > 0),
    ct_ratio     double precision CHECK (ct_ratio > 0),
    vt_ratio     double precision CHECK (vt_ratio > 0),
    digits       integer CHECK (digits BETWEEN 1 AND 12),
    tariff_zones integer NOT NULL DEFAULT 1 CHECK (tariff_zones BETWEEN 1 AND 8),
    org_id       bigint REFERENCES organisations(id),
    site_id      bigint REFERENCES sites(id),
    account_id   bigint REFERENCES accounts(id),
    lat          double precision CHECK (lat BETWEEN -90 AND 90),
    lon          double precision CHECK (lon BETWEEN -180 AND 180),
    unit         text,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    comment      text,
    PRIMARY KEY (meter_id, valid_from)
);
INSERT INTO meter_params (meter_id, valid_from, multiplier, digits, tariff_zones, org_id, site_id, account_id, lat,
                          lon, unit, created_by, comment)
SELECT id, DATE '0001-01-01', multiplier, digits, tariff_zones, org_id, site_id, account_id, lat, lon, unit,
       'migration', 'registry before dated parameters'
FROM meters;

-- Gateways the registry names exist before they first connect.
ALTER TABLE gateways ADD COLUMN registered_by text;
INSERT INTO gateways (id, registered_by)
SELECT DISTINCT gateway_id, 'migration' FROM meters WHERE gateway_id IS NOT NULL ON CONFLICT (id) DO NOTHING;

-- A meter is bound to one gateway at a time, under the code that gateway uses for it.
-- A gateway reading the meter at a time inside [valid_from, valid_to) writes it (NULL
-- valid_from: since the meter was first seen; NULL valid_to: in force).
CREATE TABLE meter_bindings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    meter_id     bigint NOT NULL REFERENCES meters(id),
    gateway_id   text NOT NULL REFERENCES gateways(id),
    gateway_code text NOT NULL,
    valid_from   timestamptz,
    valid_to     timestamptz,
    source       text NOT NULL CHECK (source IN ('registry', 'first_contact', 'act', 'migration')),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX meter_bindings_meter_open_uq ON meter_bindings (meter_id) WHERE valid_to IS NULL;
CREATE UNIQUE INDEX meter_bindings_code_open_uq ON meter_bindings (gateway_id, gateway_code) WHERE valid_to IS NULL;
CREATE INDEX meter_bindings_code_idx ON meter_bindings (gateway_id, gateway_code);
CREATE INDEX meter_bindings_meter_idx ON meter_bindings (meter_id, valid_from);
INSERT INTO meter_bindings (meter_id, gateway_id, gateway_code, source, created_by)
SELECT id, gateway_id, code, 'migration', 'migration' FROM meters WHERE gateway_id IS NOT NULL;

-- Install, exchange (замена ПУ) and removal acts: the readings per register at that moment
-- (canonical units), stored as values of the meters too.
CREATE TABLE meter_acts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('install', 'exchange', 'removal')),
    at            timestamptz NOT NULL,
    old_meter_id  bigint REFERENCES meters(id),
    new_meter_id  bigint REFERENCES meters(id),
    old_final     jsonb NOT NULL DEFAULT '{}'::jsonb,
    new_initial   jsonb NOT NULL DEFAULT '{}'::jsonb,
    gateway_id    text,
    gateway_code  text,
    document      text,
    comment       text,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'install' AND new_meter_id IS NOT NULL AND old_meter_id IS NULL)
           OR (kind = 'removal' AND old_meter_id IS NOT NULL AND new_meter_id IS NULL)
           OR (kind = 'exchange' AND old_meter_id IS NOT NULL AND new_meter_id IS NOT NULL))
);
CREATE INDEX meter_acts_old_idx ON meter_acts (old_meter_id);
CREATE INDEX meter_acts_new_idx ON meter_acts (new_meter_id);

-- Bumped by every registry change: the ingest's in-memory view of bindings, serials and
-- resources reloads when it moves.
CREATE TABLE registry_state (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    version  bigint NOT NULL DEFAULT 0
);
INSERT INTO registry_state DEFAULT VALUES;
