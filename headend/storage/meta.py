"""What a database was set up with: storage mode and the time zone of its days.

Both are written once, by the first migration (`askue_meta`), and never change under
existing data, so they are read once per database and process and kept. Every reader
of the head-end asks here; nothing else queries `askue_meta`.
"""
from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import psycopg

DEFAULT_TIMEZONE = "Europe/Moscow"


@dataclass(frozen=True)
class Meta:
    mode: str  # plain | timescale
    timezone: str  # IANA name: local days and months of the rollups, billing and VEE

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def plain(self) -> bool:
        """Native partitions and rollup tables (else TimescaleDB hypertables and aggregates)."""
        return self.mode == "plain"


class NotMigrated(RuntimeError):
    """The database has no askue schema yet."""


_CACHE: dict[tuple, Meta] = {}
_SQL = "SELECT key, value FROM askue_meta WHERE key IN ('storage_mode', 'timezone')"


def db_key(conn: psycopg.Connection | psycopg.AsyncConnection) -> tuple:
    info = conn.info
    return info.host, info.port, info.dbname


def _meta(rows: list[tuple[str, str]]) -> Meta:
    found = dict(rows)
    if "storage_mode" not in found:
        raise NotMigrated("the database has no askue schema yet; run `askue headend migrate`")
    return Meta(found["storage_mode"], found.get("timezone") or DEFAULT_TIMEZONE)


async def load(conn: psycopg.AsyncConnection) -> Meta:
    key = db_key(conn)
    meta = _CACHE.get(key)
    if meta is None:
        try:
            cur = await conn.execute(_SQL)
        except psycopg.errors.UndefinedTable:
            raise NotMigrated("the database has no askue schema yet; run `askue headend migrate`") from None
        meta = _CACHE[key] = _meta(await cur.fetchall())
    return meta


def load_sync(conn: psycopg.Connection) -> Meta:
    key = db_key(conn)
    meta = _CACHE.get(key)
    if meta is None:
        try:
            rows = conn.execute(_SQL).fetchall()
        except psycopg.errors.UndefinedTable:
            raise NotMigrated("the database has no askue schema yet; run `askue headend migrate`") from None
        meta = _CACHE[key] = _meta(rows)
    return meta


async def timezone(conn: psycopg.AsyncConnection) -> ZoneInfo:
    """The time zone days and months are counted in."""
    return (await load(conn)).tz
