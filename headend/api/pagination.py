"""Opaque cursors: the sort key of the last item of a page, base64 JSON."""
from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import HTTPException


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, n: int) -> list[Any] | None:
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "cursor is not valid; pass the next_cursor of a previous page unchanged") from None
    if not isinstance(key, list) or len(key) != n:
        raise HTTPException(400, "cursor does not belong to this list; pass the next_cursor of this endpoint")
    return key


def page(items: list[dict], limit: int, key_of) -> dict:
    """Items fetched with LIMIT limit+1 → {items, next_cursor}."""
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": encode_cursor(key_of(items[-1])) if more and items else None}
