"""Billing: what billing systems get and send — the readings feed, period snapshots
(close, recalculate), 80020 XML, hourly and integral xlsx, CSV, and the billing API.

The file codecs live in `formats/` and are pure: bytes in, dataclasses out, no
database; so is `boundary` (a register's value at a period boundary and its source). The DB-backed parts (`feed`, `snapshots`, `exporters`, `importers`, `tasks`,
`router`) build on the storage schema; values go in through the one write path
(`askue.headend.storage.values.insert`), manual readings through
`askue.headend.readings`.
"""
