"""Billing feed and exchange formats: 80020 XML, hourly and integral xlsx, CSV,
the billing pull API and period snapshots.

The codec modules (`xml80020`, `hourly_xlsx`, `integral_xlsx`, `csv_out`) are pure:
bytes in, dataclasses out, no database. The DB-backed parts (`feed`, `snapshots`,
`router`, `manual`) build on the storage schema.
"""
