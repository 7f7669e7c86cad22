-- «Администратор» of a contract, the legal-entity cabinet's owner role: full access to the
-- contract like «Руководитель», and the only customer who gives colleagues roles on it
-- («Руководитель», «Энергетик», «Бухгалтер») and takes them away. One per contract; the
-- organisation assigns it, after checking the customer's authority.
ALTER TABLE customer_bindings DROP CONSTRAINT customer_bindings_duty_check;
ALTER TABLE customer_bindings ADD CONSTRAINT customer_bindings_duty_check
    CHECK (duty IN ('admin', 'manager', 'energetic', 'accountant'));
CREATE UNIQUE INDEX customer_bindings_one_admin ON customer_bindings (account_id) WHERE duty = 'admin';
