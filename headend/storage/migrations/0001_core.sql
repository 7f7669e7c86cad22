-- Core head-end schema, shared by plain PostgreSQL and TimescaleDB modes.
-- Value tables are created by 0002 (partitioned) or 0002 .timescale (hypertables).

CREATE TABLE organisations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    name        text NOT NULL,
    -- uk = УК, tsj = ТСЖ, snt = СНТ, grid = сетевая компания, retailer = энергосбыт
    kind        text NOT NULL DEFAULT 'uk' CHECK (kind IN ('uk', 'tsj', 'snt', 'grid', 'retailer', 'other')),
    inn         text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Sites form the balance hierarchy: feeder → substation (ТП) → house.
CREATE TABLE sites (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    org_id      bigint REFERENCES organisations(id),
    parent_id   bigint REFERENCES sites(id),
    kind        text NOT NULL DEFAULT 'house' CHECK (kind IN ('feeder', 'substation', 'house', 'other')),
    name        text,
    address     text,
    lat         double precision CHECK (lat BETWEEN -90 AND 90),
    lon         double precision CHECK (lon BETWEEN -180 AND 180),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sites_org_idx ON sites (org_id);
CREATE INDEX sites_parent_idx ON sites (parent_id);

-- Лицевые счета (ЛС).
CREATE TABLE accounts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    org_id      bigint REFERENCES organisations(id),
    site_id     bigint REFERENCES sites(id),
    flat        text,
    subscriber  text,
    phone       text,
    email       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_org_idx ON accounts (org_id);
CREATE INDEX accounts_site_idx ON accounts (site_id);

CREATE TABLE gateways (
    id              text PRIMARY KEY,          -- gateway_id from the MQTT topic
    org_id          bigint REFERENCES organisations(id),
    name            text,
    online          boolean NOT NULL DEFAULT false,
    version         text,
    started_at      timestamptz,
    state_at        timestamptz,
    last_seen       timestamptz,               -- any message from it
    last_seq        bigint,
    meters          integer,
    queue_depth     integer,
    oldest_unsent_s double precision,
    health          jsonb,
    health_at       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE meters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code             text NOT NULL UNIQUE,     -- external id: the meter_id gateways send
    serial           text,
    model            text,
    resource         text NOT NULL DEFAULT 'electricity'
                     CHECK (resource IN ('electricity', 'cold_water', 'hot_water', 'heat', 'gas', 'unknown')),
    unit             text,
    digits           integer CHECK (digits BETWEEN 1 AND 12),   -- integer digits of the register
    multiplier       double precision NOT NULL DEFAULT 1 CHECK (multiplier > 0),  -- CT·VT ratio
    tariff_zones     integer NOT NULL DEFAULT 1 CHECK (tariff_zones BETWEEN 1 AND 8),
    installed_at     date,
    verified_at      date,                     -- last поверка
    verification_due date,                     -- next поверка
    is_balance       boolean NOT NULL DEFAULT false,   -- ОДПУ / balance meter
    org_id           bigint REFERENCES organisations(id),
    site_id          bigint REFERENCES sites(id),
    account_id       bigint REFERENCES accounts(id),
    lat              double precision CHECK (lat BETWEEN -90 AND 90),
    lon              double precision CHECK (lon BETWEEN -180 AND 180),
    gateway_id       text,
    bus              text,
    bus_address      text,
    status           text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'unassigned', 'decommissioned')),
    decommissioned_at date,
    replaces_id      bigint REFERENCES meters(id),
    replaced_by_id   bigint REFERENCES meters(id),
    last_contact     timestamptz,
    last_error       text,
    last_ok          boolean,
    clock_drift_s    double precision,
    reported_serial  text,                     -- serial the gateway last read from the meter
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meters_org_idx ON meters (org_id);
CREATE INDEX meters_site_idx ON meters (site_id);
CREATE INDEX meters_account_idx ON meters (account_id);
CREATE INDEX meters_gateway_idx ON meters (gateway_id);
CREATE INDEX meters_status_idx ON meters (status);

-- Abnormal situations (нештатные ситуации). VEE raises and manages them; the
-- partial unique index makes "raised once per condition" a database fact.
CREATE TABLE abnormal_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL,
    severity         text NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
    meter_id         bigint REFERENCES meters(id),
    site_id          bigint REFERENCES sites(id),
    org_id           bigint REFERENCES organisations(id),
    gateway_id       text,
    obis             text,
    ts               timestamptz,              -- when the condition was observed (meter time)
    raised_at        timestamptz NOT NULL DEFAULT now(),
    dedup_key        text NOT NULL DEFAULT '',
    title            text,
    evidence         jsonb NOT NULL DEFAULT '{}'::jsonb,
    state            text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    resolved_by      text,
    resolved_at      timestamptz,
    comment          text
);
CREATE UNIQUE INDEX abnormal_events_open_uq ON abnormal_events (kind, coalesce(meter_id, 0), coalesce(site_id, 0), dedup_key)
    WHERE state <> 'resolved';
CREATE INDEX abnormal_events_meter_idx ON abnormal_events (meter_id, raised_at);
CREATE INDEX abnormal_events_org_idx ON abnormal_events (org_id, state, raised_at);

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    login         text NOT NULL UNIQUE,
    name          text,
    role          text NOT NULL CHECK (role IN ('admin', 'dispatcher', 'org_admin', 'viewer', 'billing')),
    org_ids       bigint[],                    -- NULL: every organisation
    password_hash text,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    token_hash   text NOT NULL UNIQUE,         -- sha256 hex of the token; the token itself is never stored
    role         text NOT NULL CHECK (role IN ('admin', 'dispatcher', 'org_admin', 'viewer', 'billing')),
    org_ids      bigint[],                     -- NULL: every organisation
    user_id      bigint REFERENCES users(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    ip          text,
    action      text NOT NULL,
    object_type text,
    object_id   text,
    old         jsonb,
    new         jsonb,
    comment     text
);
CREATE INDEX audit_log_object_idx ON audit_log (object_type, object_id, at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, at);

-- A payload that failed validation, kept whole with the reason.
CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text NOT NULL,
    gateway_id  text,
    payload     bytea NOT NULL,
    reason      text NOT NULL
);
CREATE INDEX dead_letters_at_idx ON dead_letters (received_at);

-- Key/value facts about this database (storage mode, rollup time zone).
CREATE TABLE askue_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- Every stored value gets an increasing id from one sequence: a resumable cursor
-- for consumers such as the billing feed.
CREATE SEQUENCE value_seq;
