"""Local PostgreSQL and mosquitto servers for tests and the demo (never for production)."""
