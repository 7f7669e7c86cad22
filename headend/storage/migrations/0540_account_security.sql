-- Account security (issue 19 item 7): an e-mail for password resets, the optional TOTP
-- second factor with its recovery codes, single-use reset tokens, the pending second
-- step of a login, sessions a user can end one by one, and the kind of each attempt
-- the rate limit counts. Secrets that are only compared (reset tokens, recovery codes,
-- login challenges) are stored as SHA-256; the TOTP secret must be read to check a code.

ALTER TABLE users
    ADD COLUMN IF NOT EXISTS email text,
    ADD COLUMN totp_secret     text,           -- set at enrolment, in force once totp_enabled_at is set
    ADD COLUMN totp_enabled_at timestamptz,
    ADD COLUMN totp_last_step  bigint;         -- the last accepted 30-second step: a code works once
CREATE UNIQUE INDEX IF NOT EXISTS users_email_uq ON users (lower(email));

CREATE TABLE totp_recovery_codes (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id   bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash text NOT NULL,
    used_at   timestamptz
);
CREATE INDEX totp_recovery_codes_user_idx ON totp_recovery_codes (user_id);

CREATE TABLE password_resets (
    token_hash text PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ip         text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);

-- A right password of a user with TOTP: the login waits here for the code.
CREATE TABLE login_challenges (
    token_hash text PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ip         text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- A session is ended from the list by this number (its key, the cookie's hash, never leaves the server).
ALTER TABLE web_sessions ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX web_sessions_id_uq ON web_sessions (id);

-- password: the login form (and re-entering one's password); totp: the code step;
-- reset: a reset request or a reset link (ok: a completed reset).
ALTER TABLE login_attempts ADD COLUMN kind text NOT NULL DEFAULT 'password'
    CHECK (kind IN ('password', 'totp', 'reset'));
