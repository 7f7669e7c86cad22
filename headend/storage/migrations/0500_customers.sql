-- Customer cabinet (issue 19): customers are users with the role `customer`, bound to
-- accounts (ЛС, a legal entity's contract). Each binding has the customer's role on that
-- account: «Энергетик» (readings), «Бухгалтер» (documents and downloads) or
-- «Руководитель» (both; a household's only role). Login, sessions and the rate limit
-- are the operators' (users, web_sessions, login_attempts).

ALTER TABLE users DROP CONSTRAINT IF EXISTS users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('admin', 'dispatcher', 'org_admin', 'viewer', 'billing', 'customer'));

CREATE TABLE customer_bindings (
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    duty       text NOT NULL CHECK (duty IN ('manager', 'energetic', 'accountant')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, account_id)
);
CREATE INDEX customer_bindings_account_idx ON customer_bindings (account_id);

-- An invitation: the customer sets the password by a one-time link (only its SHA-256 is kept).
CREATE TABLE customer_invites (
    token_hash text PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- Per organisation: whether customers' readings wait for the organisation's confirmation.
CREATE TABLE customer_settings (
    org_id           bigint PRIMARY KEY REFERENCES organisations(id) ON DELETE CASCADE,
    confirm_readings boolean NOT NULL DEFAULT false
);

-- Readings a customer submitted that wait for (or were refused by) the organisation. A
-- confirmed one is stored through the readings service and keeps its row (status accepted).
CREATE TABLE customer_submissions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    meter_id     bigint NOT NULL REFERENCES meters(id) ON DELETE CASCADE,
    obis         text NOT NULL,
    ts           timestamptz NOT NULL,
    value        double precision NOT NULL,
    source       text NOT NULL CHECK (source IN ('web', 'file')),
    far_above    boolean NOT NULL DEFAULT false,  -- the customer confirmed a value far above the expected
    submitted_by text NOT NULL,
    submitted_at timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'rejected')),
    reason       text,
    decided_by   text,
    decided_at   timestamptz
);
CREATE INDEX customer_submissions_meter_idx ON customer_submissions (meter_id, ts);
CREATE INDEX customer_submissions_pending_idx ON customer_submissions (status) WHERE status = 'pending';

-- Losses the supplier adds to a metering point's consumption («Потери 5 %» in the cabinet).
ALTER TABLE meters ADD COLUMN losses_pct double precision NOT NULL DEFAULT 0
    CHECK (losses_pct >= 0 AND losses_pct < 100);
