-- A customer asks the organisation for the role «Администратор» on one of its contracts (the
-- legal-entity cabinet's seed, 13.2.1.3): the request waits for the organisation's staff, who
-- check the customer's authority and then assign the role or refuse, with an answer the
-- customer reads in the cabinet and by letter. One open request per customer and contract.
CREATE TABLE customer_admin_requests (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    account_id  bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    message     text NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'granted', 'refused')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    answered_at timestamptz,
    answered_by text,
    answer      text
);
CREATE UNIQUE INDEX customer_admin_requests_one_open ON customer_admin_requests (user_id, account_id)
    WHERE status = 'open';
CREATE INDEX customer_admin_requests_account ON customer_admin_requests (account_id, created_at);
