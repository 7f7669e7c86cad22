"""Alerts: users' subscriptions to abnormal events (`subscriptions`), the durable outbox
and deliveries in the database (`outbox`), what a notice says (`messages`), the channels
(`mail` — the head-end's one e-mail sender — and `webhook`), and the background task that
sends (`worker`)."""
