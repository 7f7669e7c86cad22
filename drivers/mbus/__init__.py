"""Wired M-Bus (EN 13757-2/-3) for water and heat meters: frames, driver and simulator."""
