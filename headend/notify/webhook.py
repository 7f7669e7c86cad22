"""Webhook channel: one JSON POST per notification (the payload is documented in
docs/operators.md, "Оповещения"). With a secret, the body is signed:
`X-Askue-Signature: sha256=<hex HMAC-SHA256 of the body>`. `X-Askue-Delivery` is the same
on every attempt of one notification, so a receiver can drop a repeat.

A 2xx answer is success; 408, 425, 429 and 5xx, a timeout or a refused connection are
worth another attempt; any other answer will not change (`permanent`).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from askue import __version__
from askue.headend.errors import ServiceError

RETRY_STATUSES = frozenset({408, 425, 429})


class WebhookError(ServiceError):
    """Why a webhook call failed (English and Russian); `permanent`: trying again will not help."""

    def __init__(self, message: str, message_ru: str, *, permanent: bool = False) -> None:
        super().__init__(message, message_ru)
        self.permanent = permanent


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post(url: str, payload: dict[str, Any], *, delivery: str, secret: str | None = None,
               timeout_s: float = 10.0, client: httpx.AsyncClient | None = None) -> int:
    """POST the payload; returns the HTTP status. Raises WebhookError."""
    body = body_of(payload)
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": f"askue-headend/{__version__}",
               "X-Askue-Delivery": delivery}
    if secret:
        headers["X-Askue-Signature"] = signature(secret, body)
    try:
        if client is None:
            async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as c:
                r = await c.post(url, content=body, headers=headers)
        else:
            r = await client.post(url, content=body, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException:
        raise WebhookError(f"{url}: no answer within {timeout_s:g} s", f"{url}: нет ответа за {timeout_s:g} с") from None
    except httpx.HTTPError as e:
        raise WebhookError(f"{url}: {e.__class__.__name__}: {e}",
                           f"{url} недоступен: {e.__class__.__name__}: {e}") from None
    if 200 <= r.status_code < 300:
        return r.status_code
    text = r.text[:200].replace("\n", " ")
    retry = r.status_code in RETRY_STATUSES or r.status_code >= 500
    answer = f"{r.status_code} {r.reason_phrase}" + (f": {text}" if text else "")
    raise WebhookError(f"{url} answered {answer}", f"{url} ответил {answer}", permanent=not retry)
