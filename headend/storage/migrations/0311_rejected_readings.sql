-- Readings a person or a file offered and the head-end refused (issue 18, the rejected-readings
-- report). Refusals of gateway payloads are dead_letters (0001) and values VEE keeps out of
-- billing carry their blocking reasons (0100); what was missing is the manual side: a reading
-- typed on the page or sent to the API or billing API and refused by the readings service, a
-- row of a readings template, an 80020 or hourly profile file refused whole.

CREATE TABLE rejected_readings (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),     -- when it was refused
    source         text NOT NULL CHECK (source IN ('manual', 'file', 'file_80020', 'file_hourly')),
    actor          text NOT NULL,                          -- login or API token name
    actor_role     text,
    actor_org_ids  bigint[],                               -- the sender's organisations (NULL: all)
    ip             text,
    org_id         bigint REFERENCES organisations(id),    -- the meter's, when it was found
    meter_id       bigint REFERENCES meters(id),
    meter_ref      text,                                   -- the meter as given (code or serial number)
    obis           text,
    value          double precision,
    value_text     text,                                   -- as given, when it is not a number
    ts             timestamptz,                            -- the reading's time as given
    field          text,                                   -- what was wrong: meter, value, ts, file…
    message        text NOT NULL,                          -- why, in English
    message_ru     text NOT NULL,                          -- why, in Russian
    file_name      text
);
CREATE INDEX rejected_readings_at_idx ON rejected_readings (at);
CREATE INDEX rejected_readings_org_idx ON rejected_readings (org_id, at);
