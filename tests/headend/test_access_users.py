"""Users and sessions on real PostgreSQL: argon2 hashes, the password policy, the
users CLI, login rate limit window and reset, session expiry and deactivation,
and that a logged-in user gets the same Principal (role, organisations) as a token."""
from __future__ import annotations

import asyncio
import io
from pathlib import Path

import psycopg
import pytest
from test_web_fixtures import REGISTRY

from askue.headend.auth import passwords, ratelimit, sessions, users
from askue.headend.auth.cli import main as users_cli


@pytest.fixture
def dsn(pg_dsn: str, tmp_path: Path) -> str:
    from askue.headend.registry.importer import import_file

    (tmp_path / "r.csv").write_text(REGISTRY, encoding="utf-8")
    assert import_file(pg_dsn, tmp_path / "r.csv").errors == []
    return pg_dsn


def test_password_hashing_and_policy() -> None:
    h = passwords.hash_password("правильный-пароль")
    assert h.startswith("$argon2id$") and "правильный" not in h
    assert passwords.verify_password(h, "правильный-пароль")
    assert not passwords.verify_password(h, "неправильный")
    assert not passwords.verify_password(None, "anything")
    assert not passwords.verify_password("not-a-hash", "anything")
    with pytest.raises(passwords.PasswordPolicyError, match="at least 8"):
        passwords.check_policy("short")
    with pytest.raises(passwords.PasswordPolicyError, match="differ from the login"):
        passwords.check_policy("operator1", "Operator1")


def _cli(monkeypatch, dsn: str, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return users_cli(["--dsn", dsn, *argv])


def test_users_cli(dsn: str, monkeypatch, capsys) -> None:
    assert _cli(monkeypatch, dsn, "create", "--login", "boss", "--role", "admin", "--password-stdin",
                stdin="длинный-пароль\n") == 0
    assert _cli(monkeypatch, dsn, "create", "--login", "boss", "--role", "admin", "--password-stdin",
                stdin="длинный-пароль\n") == 2
    assert "taken" in capsys.readouterr().err
    assert _cli(monkeypatch, dsn, "create", "--login", "o1", "--role", "org_admin", "--password-stdin",
                stdin="длинный-пароль\n") == 2
    assert "needs at least one organisation" in capsys.readouterr().err
    assert _cli(monkeypatch, dsn, "create", "--login", "o1", "--role", "org_admin", "--org", "nope",
                "--password-stdin", stdin="длинный-пароль\n") == 2
    assert "not found" in capsys.readouterr().err
    assert _cli(monkeypatch, dsn, "create", "--login", "o1", "--role", "org_admin", "--org", "uk1",
                "--password-stdin", stdin="short\n") == 2
    assert _cli(monkeypatch, dsn, "create", "--login", "o1", "--role", "org_admin", "--org", "uk1",
                "--password-stdin", stdin="длинный-пароль\n") == 0
    assert _cli(monkeypatch, dsn, "passwd", "--login", "o1", "--password-stdin", stdin="другой-пароль-2\n") == 0
    assert _cli(monkeypatch, dsn, "passwd", "--login", "ghost", "--password-stdin", stdin="другой-пароль-2\n") == 1
    capsys.readouterr()
    assert _cli(monkeypatch, dsn, "list") == 0
    out = capsys.readouterr().out
    assert "boss\tadmin\t*\tactive" in out and "o1\torg_admin\tuk1\tactive" in out

    async def check() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
            assert await users.authenticate(c, "o1", "длинный-пароль") is None
            u = await users.authenticate(c, "O1", "другой-пароль-2")  # logins are case-insensitive
            assert u is not None
            org = (await (await c.execute("SELECT id FROM organisations WHERE code = 'uk1'")).fetchone())[0]
            assert u.principal().role == "org_admin" and u.principal().org_ids == frozenset({org})
            token = await sessions.create(c, u, "10.0.0.1", "pytest")
            assert (await sessions.load(c, token)).user.login == "o1"
            assert await sessions.load(c, token + "x") is None
    asyncio.run(check())
    assert _cli(monkeypatch, dsn, "deactivate", "--login", "o1") == 0
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT count(*) FROM web_sessions").fetchone()[0] == 0
        # create, create, passwd, and (since account security) the deactivation, which ends sessions
        assert [a for (a,) in c.execute("SELECT action FROM audit_log WHERE actor = 'cli' ORDER BY id")] == [
            "user_create", "user_create", "user_passwd", "user_deactivate"]


def test_rate_limit_window_and_reset(dsn: str) -> None:
    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
            for _ in range(ratelimit.MAX_FAILURES_PER_LOGIN - 1):
                await ratelimit.note(c, "u", "1.1.1.1", False)
            assert (await ratelimit.check(c, "U", "1.1.1.1")).allowed
            await ratelimit.note(c, "u", "1.1.1.1", True)  # a success ends the run
            for _ in range(ratelimit.MAX_FAILURES_PER_LOGIN):
                await ratelimit.note(c, "u", "1.1.1.1", False)
            v = await ratelimit.check(c, "u", "2.2.2.2")
            assert not v.allowed and 0 < v.retry_after_s <= ratelimit.WINDOW.total_seconds() + 1
            assert "this login" in v.reason
            # failures older than the window no longer count
            await c.execute("UPDATE login_attempts SET at = at - %s", (ratelimit.WINDOW,))
            assert (await ratelimit.check(c, "u", "1.1.1.1")).allowed
            for i in range(ratelimit.MAX_FAILURES_PER_IP):  # many logins from one address
                await ratelimit.note(c, f"x{i}", "3.3.3.3", False)
            v = await ratelimit.check(c, "fresh", "3.3.3.3")
            assert not v.allowed and "address" in v.reason
    asyncio.run(go())


def test_expired_and_idle_sessions_end(dsn: str) -> None:
    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
            u = await users.create_user_async(c, "v1", "длинный-пароль", "viewer", None)
            t1 = await sessions.create(c, u, None, None)
            t2 = await sessions.create(c, u, None, None)
            await c.execute("UPDATE web_sessions SET last_seen_at = now() - %s WHERE token_hash = %s",
                            (sessions.IDLE, sessions._hash(t1)))
            await c.execute("UPDATE web_sessions SET expires_at = now() - interval '1 s' WHERE token_hash = %s",
                            (sessions._hash(t2),))
            assert await sessions.load(c, t1) is None and await sessions.load(c, t2) is None
    asyncio.run(go())
