-- Operators (issue 8): web sessions, login attempts for rate limiting, and a few
-- user facts. Users and API tokens themselves are in 0001.

ALTER TABLE users
    ADD COLUMN lang                text NOT NULL DEFAULT 'ru' CHECK (lang IN ('ru', 'en')),
    ADD COLUMN last_login_at       timestamptz,
    ADD COLUMN password_changed_at timestamptz;

-- A browser session: only the SHA-256 of the cookie value is stored, so a dump of
-- this table cannot be replayed. `csrf` is the per-session form token.
CREATE TABLE web_sessions (
    token_hash   text PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf         text NOT NULL,
    ip           text,
    user_agent   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX web_sessions_user_idx ON web_sessions (user_id);
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);

-- Every login attempt, kept for the rate limit (failures per login and per address
-- in a sliding window) and for the users' history.
CREATE TABLE login_attempts (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    login  text NOT NULL,
    ip     text,
    ok     boolean NOT NULL
);
CREATE INDEX login_attempts_login_idx ON login_attempts (lower(login), at);
CREATE INDEX login_attempts_ip_idx ON login_attempts (ip, at);
