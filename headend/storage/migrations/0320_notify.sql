-- Alerts (issue 18, item 8): users' subscriptions to abnormal events, and a durable
-- outbox so that each event's notification — and its resolution's — is sent once,
-- whatever writes the event (VEE, an operator, an import) and whatever restarts.

-- What a user wants to hear about, and where. Empty `kinds`: every kind; NULL `org_ids`:
-- every organisation the user sees (the user's own scope always applies on top).
CREATE TABLE notify_subscriptions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel       text NOT NULL CHECK (channel IN ('email', 'webhook')),
    target        text NOT NULL,               -- e-mail address or webhook URL
    secret        text,                        -- webhook: HMAC-SHA256 key of the X-Askue-Signature header
    kinds         text[] NOT NULL DEFAULT '{}',
    min_severity  text NOT NULL DEFAULT 'warning' CHECK (min_severity IN ('info', 'warning', 'critical')),
    org_ids       bigint[],
    send_resolved boolean NOT NULL DEFAULT true,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, channel, target)
);

-- One row per event transition to announce, written by the triggers below in the
-- writer's own transaction: no event is committed without its outbox row.
CREATE TABLE notify_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    bigint NOT NULL REFERENCES abnormal_events(id) ON DELETE CASCADE,
    transition  text NOT NULL CHECK (transition IN ('raised', 'resolved')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expanded_at timestamptz,                   -- when its deliveries were made
    UNIQUE (event_id, transition)
);
CREATE INDEX notify_outbox_pending_idx ON notify_outbox (id) WHERE expanded_at IS NULL;

-- One notification to one subscription. The channel and target are copied so that the
-- history stays true after the subscription changes.
CREATE TABLE notify_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id       bigint NOT NULL REFERENCES notify_outbox(id) ON DELETE CASCADE,
    subscription_id bigint REFERENCES notify_subscriptions(id) ON DELETE SET NULL,
    user_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel         text NOT NULL,
    target          text NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (outbox_id, subscription_id)
);
CREATE INDEX notify_deliveries_due_idx ON notify_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notify_deliveries_user_idx ON notify_deliveries (user_id, id);

CREATE FUNCTION askue_notify_raised() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notify_outbox (event_id, transition)
    SELECT id, 'raised' FROM new_events
    UNION ALL SELECT id, 'resolved' FROM new_events WHERE state = 'resolved'
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION askue_notify_resolved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notify_outbox (event_id, transition)
    SELECT n.id, 'resolved' FROM new_events n JOIN old_events o ON o.id = n.id
    WHERE n.state = 'resolved' AND o.state <> 'resolved'
    ORDER BY n.id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

-- Statement triggers with transition tables: VEE inserts and closes events in batches.
CREATE TRIGGER abnormal_events_notify_raised AFTER INSERT ON abnormal_events
    REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION askue_notify_raised();
CREATE TRIGGER abnormal_events_notify_resolved AFTER UPDATE ON abnormal_events
    REFERENCING OLD TABLE AS old_events NEW TABLE AS new_events FOR EACH STATEMENT
    EXECUTE FUNCTION askue_notify_resolved();
