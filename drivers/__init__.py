"""Meter protocols. Each protocol lives in its own subpackage with an I/O-free
core (frame building and parsing), a driver that speaks it over a Transport,
and a protocol-true simulator. See drivers/base.py for the driver interface."""
