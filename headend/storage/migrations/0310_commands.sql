-- Commands from the head-end to gateways (issue 18): each command with its state.
--   pending  → stored, waits for its gateway to be online
--   sent     → published (QoS 1) to <root>/v1/<gateway>/cmd, the broker acknowledged it
--   done / failed → the gateway's CommandResult arrived (ok true / false)
--   expired  → expires_at passed before a result came (a later result still counts)
-- The dispatcher (askue.headend.commands.dispatcher) publishes pending commands of online
-- gateways; NOTIFY wakes it when a command is stored or a gateway comes online.

CREATE TABLE commands (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mqtt_id      text NOT NULL UNIQUE,                 -- Command.id on the wire
    gateway_id   text NOT NULL,
    meter_id     bigint REFERENCES meters(id),         -- NULL: a gateway-wide command
    org_id       bigint REFERENCES organisations(id),  -- the meter's organisation (scope)
    command      text NOT NULL CHECK (command IN ('poll_now', 'read_profile', 'read_clock', 'sync_clock',
                                                  'relay_disconnect', 'relay_reconnect', 'reload_config')),
    args         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- as published (meter_id, start, end, timeout_s…)
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'sent', 'done', 'failed', 'expired')),
    created_by   text NOT NULL,
    created_ip   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    sent_at      timestamptz,
    attempts     integer NOT NULL DEFAULT 0,           -- publications (a lost connection may repeat one)
    finished_at  timestamptz,                          -- the gateway's finished_at, or when it expired
    result       jsonb,                                -- CommandResult.result
    error        text,                                 -- CommandResult.error, or why it expired
    late         boolean NOT NULL DEFAULT false        -- the result came after expiry
);
CREATE INDEX commands_meter_idx ON commands (meter_id, id);
CREATE INDEX commands_gateway_idx ON commands (gateway_id, id);
CREATE INDEX commands_open_idx ON commands (expires_at) WHERE state IN ('pending', 'sent');

CREATE FUNCTION askue_commands_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('askue_commands', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER commands_new AFTER INSERT ON commands
    FOR EACH ROW EXECUTE FUNCTION askue_commands_notify();
-- a gateway coming online: its waiting commands can go
CREATE TRIGGER gateways_online AFTER UPDATE OF online ON gateways
    FOR EACH ROW WHEN (NEW.online AND NOT OLD.online) EXECUTE FUNCTION askue_commands_notify();
CREATE TRIGGER gateways_new_online AFTER INSERT ON gateways
    FOR EACH ROW WHEN (NEW.online) EXECUTE FUNCTION askue_commands_notify();
