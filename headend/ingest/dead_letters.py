"""Payloads that failed validation go whole to `dead_letters` with the reason."""
from __future__ import annotations

import psycopg


async def store(conn: psycopg.AsyncConnection, items: list[tuple[str, str | None, bytes, str]]) -> None:
    if not items:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO dead_letters (topic, gateway_id, payload, reason) VALUES (%s, %s, %s, %s)", items
        )
