"""Bearer-token authentication: a token becomes a `Principal` (auth/permissions.py).

Tokens are random strings shown once; only their SHA-256 is stored in
`api_tokens` (a token has 256 bits of entropy, so a fast hash is enough — the
slow KDF is for the operators' passwords). A principal limited to some
organisations sees only their objects; anything else answers 404, the same as
an object that does not exist.
"""
from __future__ import annotations

import hashlib
import secrets

import psycopg
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from askue.headend.api import background, deps
from askue.headend.auth.permissions import ROLES, Principal

TOKEN_PREFIX = "askue_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(conn: psycopg.Connection, name: str, role: str, org_codes: list[str] | None = None) -> str:
    """Store a new token and return it (the only time it is visible). Raises ValueError on bad input."""
    if role not in ROLES or role == "customer":
        raise ValueError(f"role {role!r} is not for API tokens; use one of "
                         f"{', '.join(r for r in ROLES if r != 'customer')} (customers log in to the cabinet)")
    if not name.strip():
        raise ValueError("token name must not be empty")
    org_ids: list[int] | None = None
    if org_codes:
        rows = conn.execute("SELECT code, id FROM organisations WHERE code = ANY(%s)", (org_codes,)).fetchall()
        found = dict(rows)
        missing = [c for c in org_codes if c not in found]
        if missing:
            raise ValueError(f"organisation(s) {', '.join(missing)} not found; import the registry first")
        org_ids = [found[c] for c in org_codes]
    elif role == "org_admin":
        raise ValueError("an org_admin token needs --org CODE")
    token = new_token()
    conn.execute("INSERT INTO api_tokens (name, token_hash, role, org_ids) VALUES (%s, %s, %s, %s)",
                 (name, hash_token(token), role, org_ids))
    return token


async def _lookup(conn: psycopg.AsyncConnection, token_hash: str) -> tuple | None:
    cur = await conn.execute(
        "SELECT name, role, org_ids, last_used_at > now() - interval '1 minute' FROM api_tokens "
        "WHERE token_hash = %s AND revoked_at IS NULL", (token_hash,))
    return await cur.fetchone()


_bearer = HTTPBearer(auto_error=False, description="API token from `askue headend token create`")


async def require_principal(request: Request,
                            creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})
    token_hash = hash_token(creds.credentials)
    # Looked up where the request reads (the replica if there is one: reads go on while the
    # primary is away); a token made a moment ago may not be there yet, the primary has it.
    row = None
    async with deps.connection(request) as conn:
        row = await _lookup(conn, token_hash)
    if row is None and deps.has_replica(request):
        async with request.app.state.pool.connection() as conn:
            row = await _lookup(conn, token_hash)
    if row is None:
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    name, role, org_ids, recent = row
    if not recent:
        background.touch(request.app.state.pool, "UPDATE api_tokens SET last_used_at = now() WHERE token_hash = %s",
                         (token_hash,))
    return Principal(name, role, None if org_ids is None else frozenset(org_ids),
                     request.client.host if request.client else None)
