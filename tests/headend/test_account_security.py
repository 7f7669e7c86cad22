"""Account security for every role, over real servers: the password policy, change and
reset by e-mail through a real SMTP server (aiosmtpd: STARTTLS + AUTH LOGIN), the list of
sessions with «Завершить», the TOTP second factor checked with codes pyotp computes, and
the rate limit on every way in (password, code, reset request, reset link)."""
from __future__ import annotations

import hashlib
import io
import re
import time
from urllib.parse import urlsplit

import psycopg
import pyotp
import pytest
from alert_servers import SmtpServer
from fastapi.testclient import TestClient

from askue.headend.api.app import create_app
from askue.headend.auth import passwords, ratelimit, totp
from askue.headend.auth.users import create_user
from askue.headend.config import Settings

W = "/web"
PUBLIC = "https://askue.uk.example"
PASSWORD = "секрет-пароль-1"
NEW = "три зелёных слона"


def _users(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("INSERT INTO organisations (code, name) VALUES ('uk1', 'УК Север')")
        create_user(c, "disp", PASSWORD, "dispatcher", name="Анна Смирнова")
        create_user(c, "viewer1", PASSWORD, "viewer", ["uk1"])
        create_user(c, "eng", PASSWORD, "viewer", ["uk1"], lang="en")
        create_user(c, "nomail", PASSWORD, "viewer", ["uk1"])
        c.execute("UPDATE users SET email = 'eng@uk.example' WHERE login = 'eng'")
        c.execute("UPDATE users SET email = 'disp@uk.example' WHERE login = 'disp'")
        c.execute("UPDATE users SET email = 'viewer@uk.example' WHERE login = 'viewer1'")


_OTHERS: list[TestClient] = []


@pytest.fixture
def site(pg_dsn: str, smtp: SmtpServer):
    _users(pg_dsn)
    settings = Settings(dsn=pg_dsn, public_url=PUBLIC, **smtp.settings())
    with TestClient(create_app(settings)) as client:
        try:
            yield client, pg_dsn
        finally:
            while _OTHERS:
                _OTHERS.pop().close()


def new_client(client: TestClient) -> TestClient:
    """Another browser on the same head-end (its own cookies; the app already runs)."""
    other = TestClient(client.app)
    _OTHERS.append(other)
    return other


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def field_error(html: str, field: str) -> str:
    m = re.search(rf'<span class="field-error" id="err-{field}"[^>]*>([^<]+)</span>', html) or \
        re.search(rf'<p class="error" id="err-{field}"[^>]*>([^<]+)</p>', html)
    assert m, html[-3000:]
    return m.group(1)


def log_in(client: TestClient, user: str, password: str = PASSWORD):
    page = client.get(f"{W}/login")
    return client.post(f"{W}/login", data={"login": user, "password": password, "csrf": csrf_of(page.text)},
                       follow_redirects=False)


def ask_reset(client: TestClient, ident: str):
    page = client.get(f"{W}/password/forgot")
    return client.post(f"{W}/password/forgot", data={"ident": ident, "csrf": csrf_of(page.text)})


def wait_mail(smtp: SmtpServer, to: str, n: int = 1, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while len(smtp.to(to)) < n:
        assert time.monotonic() < deadline, f"no letter to {to}: {[r.rcpt_tos for r in smtp.received]}"
        time.sleep(0.05)
    return smtp.to(to)[n - 1]


def link_of(text: str) -> str:
    return re.search(r"https?://\S+", text).group(0)


def audit(dsn: str, action: str) -> list[tuple]:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT actor, ip, object_id, old::text, new::text, comment FROM audit_log WHERE action = %s "
                         "ORDER BY id", (action,)).fetchall()


# ---- the policy ---------------------------------------------------------------------------------
@pytest.mark.parametrize("pw, words", [
    ("short", "не меньше 8"), ("disp2024disp", "не должен содержать логин"), ("disp", "не меньше 8"),
    ("смирнова-1980", "имя"), ("qwerty123", "подбирают первым"), ("Пароль2024!", "подбирают первым"),
    ("12345678", "слишком простой"), ("zzzzzzzzzz", "слишком простой"), ("abcdefgh1", "подбирают первым"),
])
def test_password_policy_refuses_weak_passwords(pw: str, words: str) -> None:
    with pytest.raises(passwords.PasswordPolicyError) as e:
        passwords.check_policy(pw, "disp", "Анна Смирнова")
    assert words in e.value.message_ru


def test_password_policy_accepts_a_passphrase() -> None:
    for pw in (NEW, PASSWORD, "Kor0va-na-lugu"):
        passwords.check_policy(pw, "disp", "Анна Смирнова")


# ---- change ---------------------------------------------------------------------------------------
def test_change_password_shows_bad_input_next_to_its_field(site) -> None:
    client, dsn = site
    assert log_in(client, "disp").status_code == 303
    csrf = csrf_of(client.get(f"{W}/security").text)
    cases = [({"old": "не-тот-пароль", "new": NEW, "again": NEW}, "old", "текущий пароль неверен", 403),
             ({"old": PASSWORD, "new": "qwerty123", "again": "qwerty123"}, "new", "подбирают первым", 422),
             ({"old": PASSWORD, "new": NEW, "again": NEW + "!"}, "again", "не совпадают", 422),
             ({"old": PASSWORD, "new": PASSWORD, "again": PASSWORD}, "new", "совпадает с текущим", 422)]
    for form, field, words, status in cases:
        r = client.post(f"{W}/security/password", data=form | {"csrf": csrf})
        assert r.status_code == status and words in field_error(r.text, field), (form, r.status_code)
        assert 'value="' + form["old"] not in r.text  # passwords are never echoed back
    assert log_in(TestClient(client.app), "disp").status_code == 303  # still the old password
    ok = client.post(f"{W}/security/password", data={"old": PASSWORD, "new": NEW, "again": NEW, "csrf": csrf})
    assert ok.status_code == 200 and "Пароль изменён" in ok.text
    (row,) = audit(dsn, "password_change")
    assert row[0] == "disp" and PASSWORD not in str(row) and NEW not in str(row)
    assert len(audit(dsn, "password_confirm_failed")) == 1


# ---- reset by e-mail ------------------------------------------------------------------------------
def test_reset_by_email_over_real_smtp(site, smtp: SmtpServer) -> None:
    client, dsn = site
    other = new_client(client)  # the user is logged in elsewhere: the reset ends that session
    assert log_in(other, "disp").status_code == 303
    r = ask_reset(client, "DISP@uk.example")
    assert r.status_code == 200 and 'id="reset-sent"' in r.text
    got = wait_mail(smtp, "disp@uk.example")
    assert got.tls and got.login == "askue-alerts"
    assert got.message["Subject"] == "АСКУЭ: восстановление пароля" and "Для логина disp" in got.text
    link = link_of(got.text)
    assert link.startswith(PUBLIC + "/web/password/reset?token=")
    token = link.split("token=")[1]
    with psycopg.connect(dsn) as c:  # only the token's hash is kept
        (stored,) = c.execute("SELECT token_hash FROM password_resets").fetchone()
    assert stored == hashlib.sha256(token.encode()).hexdigest() and token not in str(audit(dsn, "password_reset_request"))
    path = urlsplit(link)
    form = client.get(f"{path.path}?{path.query}")
    assert form.status_code == 200 and "Логин disp" in form.text
    csrf = csrf_of(form.text)
    weak = client.post(f"{W}/password/reset", data={"token": token, "password": "12345678", "again": "12345678",
                                                    "csrf": csrf})
    assert weak.status_code == 422 and "слишком простой" in field_error(weak.text, "password")
    assert f'value="{token}"' in weak.text  # the link still works after bad input
    ok = client.post(f"{W}/password/reset", data={"token": token, "password": NEW, "again": NEW,
                                                  "csrf": csrf_of(weak.text)}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"].endswith("/login?reset=1")
    assert other.get(f"{W}/security", follow_redirects=False).status_code == 303  # that session ended
    assert log_in(client, "disp").status_code == 401
    assert log_in(client, "disp", NEW).status_code == 303
    used = client.get(f"{path.path}?{path.query}")
    assert used.status_code == 410 and "уже использована" in field_error(used.text, "token")
    again = client.post(f"{W}/password/reset", data={"token": token, "password": "другой пароль 7", "again":
                                                     "другой пароль 7", "csrf": csrf_of(client.get(f"{W}/password/forgot").text)})
    assert again.status_code == 422 and "уже использована" in field_error(again.text, "token")
    (row,) = audit(dsn, "password_reset")
    assert row[0] == "disp" and '"sessions_ended": 1' in row[4] and NEW not in str(row)
    notice = wait_mail(smtp, "disp@uk.example", 2)  # whoever read the reset letter, the owner learns of it
    assert "задан новый пароль по ссылке из письма" in notice.text and token not in notice.text


async def test_no_reset_letter_leaves_for_a_request_that_rolled_back(pg_dsn: str, smtp: SmtpServer) -> None:
    """The letter carries a link to a token the request's transaction stores: should that roll
    back (a later step of the request failed, the database went away), no letter goes."""
    import asyncio

    from askue.headend.app import open_pool
    from askue.headend.auth import reset
    from askue.headend.notify.mail import MailSettings

    _users(pg_dsn)
    settings = Settings(dsn=pg_dsn, public_url=PUBLIC, **smtp.settings())
    mail = MailSettings.from_settings(settings)
    pool = await open_pool(settings)
    try:
        with pytest.raises(RuntimeError):
            async with pool.connection() as c:
                await reset.request(c, "disp", "192.0.2.7", mail=mail, base_url=PUBLIC)
                raise RuntimeError("a later step of the request failed")
        async with pool.connection() as c:
            await reset.request(c, "viewer1", "192.0.2.7", mail=mail, base_url=PUBLIC)
        deadline = asyncio.get_running_loop().time() + 10
        while not smtp.to("viewer@uk.example"):
            assert asyncio.get_running_loop().time() < deadline, "the committed request's letter did not come"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # as long again for a letter that should not come
    finally:
        await pool.close()
    assert smtp.to("disp@uk.example") == []
    with psycopg.connect(pg_dsn) as c:
        assert c.execute("SELECT u.login FROM password_resets r JOIN users u ON u.id = r.user_id").fetchall() == \
            [("viewer1",)]


def test_reset_letter_in_the_users_language_and_an_expired_link(site, smtp: SmtpServer) -> None:
    client, dsn = site
    ask_reset(client, "eng")
    got = wait_mail(smtp, "eng@uk.example")
    assert got.message["Subject"] == "askue: password reset" and "login eng" in got.text
    token = link_of(got.text).split("token=")[1]
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE password_resets SET expires_at = now() - interval '1 s'")
    r = client.get(f"{W}/password/reset", params={"token": token})
    assert r.status_code == 410 and "Срок ссылки истёк" in field_error(r.text, "token")
    unknown = client.get(f"{W}/password/reset", params={"token": "x" * 43})
    assert unknown.status_code == 404 and "не найдена" in field_error(unknown.text, "token")


def test_a_reset_request_never_tells_whether_the_login_exists(site, smtp: SmtpServer) -> None:
    client, dsn = site
    answers = []
    for ident in ("nobody", "nomail", "nobody@uk.example", "disp"):
        r = ask_reset(client, ident)
        answers.append((r.status_code, re.sub(r'value="[^"]*"', "", r.text)))
    assert len(set(answers)) == 1
    wait_mail(smtp, "disp@uk.example")
    time.sleep(0.3)
    assert [m.rcpt_tos for m in smtp.received] == [["disp@uk.example"]]
    assert len(audit(dsn, "password_reset_request")) == 4


def test_reset_requests_are_rate_limited_and_do_not_lock_the_login(site, smtp: SmtpServer) -> None:
    client, dsn = site
    for _ in range(ratelimit.MAX_RESETS_PER_LOGIN):
        assert ask_reset(client, "disp").status_code == 200
    r = ask_reset(client, "disp")
    assert r.status_code == 429 and "Слишком много запросов" in field_error(r.text, "ident")
    assert int(r.headers["Retry-After"]) > 0
    wait_mail(smtp, "disp@uk.example", ratelimit.MAX_RESETS_PER_LOGIN)
    assert log_in(client, "disp").status_code == 303
    # unknown links from one address count too
    for i in range(ratelimit.MAX_RESETS_PER_IP):
        client.get(f"{W}/password/reset", params={"token": f"guess{i}"})
        page = client.get(f"{W}/password/forgot")
        client.post(f"{W}/password/reset", data={"token": f"guess{i}", "password": NEW, "again": NEW,
                                                 "csrf": csrf_of(page.text)})
    blocked = client.post(f"{W}/password/reset", data={"token": "guess", "password": NEW, "again": NEW,
                                                       "csrf": csrf_of(client.get(f"{W}/password/forgot").text)})
    assert blocked.status_code == 422 and "Слишком много попыток с этого адреса; повторите через 15 мин" == field_error(blocked.text, "token")


# ---- notices of changes ---------------------------------------------------------------------------
def test_security_changes_are_told_to_the_users_address(site, smtp: SmtpServer) -> None:
    client, dsn = site
    assert log_in(client, "disp").status_code == 303
    csrf = csrf_of(client.get(f"{W}/security").text)
    assert client.post(f"{W}/security/password", data={"old": PASSWORD, "new": NEW, "again": NEW,
                                                       "csrf": csrf}).status_code == 200
    got = wait_mail(smtp, "disp@uk.example")
    assert got.message["Subject"] == "АСКУЭ: изменение безопасности учётной записи"
    assert "В учётной записи АСКУЭ disp изменён пароль" in got.text and "с адреса testclient" in got.text
    assert re.search(r"\d\d\.\d\d\.\d{4} \d\d:\d\d \(МСК\)", got.text), got.text
    assert "Забыли пароль?" in got.text and PASSWORD not in got.text and NEW not in got.text
    # a new address: the old one is told where the letters go now; the new one gets nothing
    page = client.get(f"{W}/security")
    assert client.post(f"{W}/security/email", data={"email": "anna@mail.example", "csrf": csrf_of(page.text)},
                       follow_redirects=False).status_code == 303
    moved = wait_mail(smtp, "disp@uk.example", 2)
    assert "изменён адрес для писем: теперь anna@mail.example" in moved.text
    # in the user's language
    eng = new_client(client)
    assert log_in(eng, "eng").status_code == 303
    assert eng.post(f"{W}/security/password", data={"old": PASSWORD, "new": NEW, "again": NEW,
                                                    "csrf": csrf_of(eng.get(f"{W}/security").text)}).status_code == 200
    got = wait_mail(smtp, "eng@uk.example")
    assert got.message["Subject"] == "askue: your account's security changed" and "the password was changed" in got.text
    # no address on record: nothing to send, the change itself goes through
    none = new_client(client)
    assert log_in(none, "nomail").status_code == 303
    assert none.post(f"{W}/security/password", data={"old": PASSWORD, "new": NEW, "again": NEW,
                                                     "csrf": csrf_of(none.get(f"{W}/security").text)}).status_code == 200
    time.sleep(0.3)
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["disp@uk.example", "disp@uk.example", "eng@uk.example"]
    assert len(audit(dsn, "password_change")) == 3


# ---- sessions -------------------------------------------------------------------------------------
def test_sessions_list_end_one_and_all_others(site) -> None:
    client, dsn = site
    second, third = new_client(client), new_client(client)
    for c in (client, second, third):
        assert log_in(c, "disp").status_code == 303
    page = client.get(f"{W}/security")
    ids = re.findall(r'<tr id="session-(\d+)"', page.text)
    assert len(ids) == 3 and page.text.count("Этот сеанс") == 1 and page.text.count(">Завершить<") == 2
    with psycopg.connect(dsn) as c:
        second_id = c.execute("SELECT max(id) FROM web_sessions").fetchone()[0] - 1
    r = client.post(f"{W}/security/sessions/{second_id}/end", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 200 and "Сеанс завершён" in r.text
    assert second.get(f"{W}/security", follow_redirects=False).status_code == 303
    assert third.get(f"{W}/security", follow_redirects=False).status_code == 200
    # another user's session is not found, as if it did not exist
    viewer = new_client(client)
    log_in(viewer, "viewer1")
    with psycopg.connect(dsn) as c:
        mine = c.execute("SELECT max(id) FROM web_sessions").fetchone()[0]
    theirs = client.post(f"{W}/security/sessions/{mine}/end", data={"csrf": csrf_of(page.text)})
    assert theirs.status_code == 404
    assert viewer.get(f"{W}/security", follow_redirects=False).status_code == 200
    r = client.post(f"{W}/security/sessions/end-others", data={"csrf": csrf_of(page.text)})
    assert "Все другие сеансы завершены" in r.text and len(re.findall(r'<tr id="session-', r.text)) == 1
    assert third.get(f"{W}/security", follow_redirects=False).status_code == 303
    assert [a[2] for a in audit(dsn, "session_end")] == [str(second_id)]
    assert '"ended": 1' in audit(dsn, "sessions_end_others")[0][4]


# ---- TOTP -----------------------------------------------------------------------------------------
def enrol(client: TestClient) -> tuple[str, list[str]]:
    page = client.get(f"{W}/security/totp")
    assert page.status_code == 200 and 'src="data:image/svg+xml' in page.text
    secret = re.search(r'id="totp-secret">([^<]+)<', page.text).group(1).replace(" ", "")
    assert client.get(f"{W}/security/totp").text.count(secret[:4]) >= 1  # a reload keeps the secret
    bad = client.post(f"{W}/security/totp", data={"code": "000000" if pyotp.TOTP(secret).now() != "000000"
                                                  else "111111", "csrf": csrf_of(page.text)})
    assert bad.status_code == 422 and "код не подходит" in field_error(bad.text, "code")
    letters = client.post(f"{W}/security/totp", data={"code": "12ab", "csrf": csrf_of(page.text)})
    assert "6 цифр" in field_error(letters.text, "code")
    ok = client.post(f"{W}/security/totp", data={"code": pyotp.TOTP(secret).now(), "csrf": csrf_of(page.text)})
    assert ok.status_code == 200 and "Вход с кодом включён" in ok.text
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", ok.text)
    assert len(codes) == totp.RECOVERY_CODES and len(set(codes)) == totp.RECOVERY_CODES
    return secret, codes


def code_step(client: TestClient, code: str):
    page = client.get(f"{W}/login")  # the code form's CSRF cookie is the login form's
    return client.post(f"{W}/login/code", data={"code": code, "csrf": csrf_of(page.text)}, follow_redirects=False)


def password_step(client: TestClient, user: str = "viewer1"):
    r = log_in(client, user)
    assert r.status_code == 200 and 'action="/web/login/code"' in r.text and "askue_session" not in r.cookies
    return r


def test_totp_enrol_login_with_a_code_and_recovery_codes(site, smtp: SmtpServer) -> None:
    client, dsn = site
    assert log_in(client, "viewer1").status_code == 303
    secret, codes = enrol(client)
    with psycopg.connect(dsn) as c:
        (stored,) = c.execute("SELECT totp_secret FROM users WHERE login = 'viewer1'").fetchone()
        hashes = {h for (h,) in c.execute("SELECT code_hash FROM totp_recovery_codes")}
    assert stored == secret and not hashes & {cd.replace("-", "") for cd in codes}
    assert secret not in str(audit(dsn, "totp_enable"))
    # a new browser: the password alone does not let in
    b = new_client(client)
    r = password_step(b)
    again = b.post(f"{W}/login/code", data={"code": "999999" if pyotp.TOTP(secret).now() != "999999" else "888888",
                                            "csrf": csrf_of(r.text)})
    assert again.status_code == 401 and "Код не подходит" in again.text
    assert b.get(f"{W}/security", follow_redirects=False).status_code == 303
    # enrolment spent this step's code: the next step's is accepted too (a phone's clock a little ahead)
    code = pyotp.TOTP(secret).at(time.time() + 30)
    ok = b.post(f"{W}/login/code", data={"code": code, "csrf": csrf_of(again.text)}, follow_redirects=False)
    assert ok.status_code == 303 and b.get(f"{W}/security").status_code == 200
    # the same code does not work twice (it could have been seen over a shoulder)
    c2 = new_client(client)
    password_step(c2)
    assert code_step(c2, code).status_code == 401
    # nor does one from long ago
    assert code_step(c2, pyotp.TOTP(secret).at(time.time() - 300)).status_code == 401
    # a recovery code works once, with or without its dashes
    assert code_step(c2, codes[0].replace("-", "").upper()).status_code == 303
    c3 = new_client(client)
    password_step(c3)
    assert code_step(c3, codes[0]).status_code == 401
    assert '"left": 9' in audit(dsn, "totp_recovery_used")[0][4]
    rows = audit(dsn, "login")
    assert {r[4] for r in rows if r[4]} == {'{"second_factor": "totp"}', '{"second_factor": "recovery"}'}
    # new recovery codes and switching off need the password
    page = client.get(f"{W}/security")
    assert "Резервных кодов осталось: 9" in page.text
    wrong = client.post(f"{W}/security/totp/codes", data={"password": "неверный пароль", "csrf": csrf_of(page.text)})
    assert wrong.status_code == 403 and "неверен" in field_error(wrong.text, "codes_password")
    fresh = client.post(f"{W}/security/totp/codes", data={"password": PASSWORD, "csrf": csrf_of(page.text)})
    assert len(re.findall(r"<li><code>", fresh.text)) == 10 and codes[1] not in fresh.text
    c4 = new_client(client)
    password_step(c4)
    assert code_step(c4, codes[1]).status_code == 401  # the old codes stopped working
    # a login waiting for its code when the password changes must start again
    c5 = new_client(client)
    password_step(c5)
    page = client.get(f"{W}/security")
    assert client.post(f"{W}/security/password", data={"old": PASSWORD, "new": NEW, "again": NEW,
                                                       "csrf": csrf_of(page.text)}).status_code == 200
    late = code_step(c5, pyotp.TOTP(secret).at(time.time() + 60))
    assert late.status_code == 401 and "Время на ввод кода истекло" in late.text
    page = client.get(f"{W}/security")
    off = client.post(f"{W}/security/totp/disable", data={"password": NEW, "csrf": csrf_of(page.text)})
    assert off.status_code == 200 and "Вход с кодом выключен" in off.text
    notice = wait_mail(smtp, "viewer@uk.example", 2)  # after the password change's
    assert "выключен вход с кодом из приложения" in notice.text
    assert log_in(new_client(client), "viewer1", NEW).status_code == 303
    assert [a[0] for a in audit(dsn, "totp_disable")] == ["viewer1"]


def test_wrong_codes_lock_the_login_even_with_the_right_password(site) -> None:
    client, dsn = site
    log_in(client, "viewer1")
    secret, _ = enrol(client)
    b = new_client(client)
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    for _ in range(ratelimit.MAX_FAILURES_PER_LOGIN):
        password_step(b)  # a right password each time does not end the run of wrong codes
        assert code_step(b, wrong).status_code == 401
    r = log_in(b, "viewer1")
    assert r.status_code == 429 and "Слишком много неудачных попыток" in r.text and int(r.headers["Retry-After"]) > 0
    with psycopg.connect(dsn, autocommit=True) as c:  # a code step already under way is refused too
        c.execute("DELETE FROM login_attempts WHERE kind = 'totp' AND id = (SELECT max(id) FROM login_attempts)")
    password_step(b)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("INSERT INTO login_attempts (login, ip, ok, kind) VALUES ('viewer1', 'testclient', false, 'totp')")
    locked = code_step(b, pyotp.TOTP(secret).now())
    assert locked.status_code == 429 and b.get(f"{W}/security", follow_redirects=False).status_code == 303
    assert audit(dsn, "login_blocked") and audit(dsn, "login_code_failed")


def test_an_admin_switches_off_a_lost_second_factor_with_the_cli(site, monkeypatch) -> None:
    from askue.headend.auth import cli

    client, dsn = site
    log_in(client, "viewer1")
    enrol(client)
    password_step(new_client(client))
    assert cli.main(["--dsn", dsn, "totp-off", "--login", "viewer1"]) == cli.EXIT_OK
    assert log_in(new_client(client), "viewer1").status_code == 303  # the password alone again
    assert cli.main(["--dsn", dsn, "totp-off", "--login", "viewer1"]) == cli.EXIT_FAILURE
    assert [a[0] for a in audit(dsn, "totp_disable")] == ["cli"]
    monkeypatch.setattr("sys.stdin", io.StringIO("ещё-один-пароль\n"))
    assert cli.main(["--dsn", dsn, "create", "--login", "eng2", "--role", "viewer", "--email", "eng@uk.example",
                     "--password-stdin"]) == cli.EXIT_USAGE  # that e-mail is another user's
    assert cli.main(["--dsn", dsn, "create", "--login", "eng2", "--role", "viewer", "--email", "eng2@uk.example",
                     "--password-stdin"]) == cli.EXIT_OK
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT email FROM users WHERE login = 'eng2'").fetchone() == ("eng2@uk.example",)


@pytest.mark.parametrize("user", ["disp", "viewer1"])
def test_the_security_page_for_each_role_in_both_languages(site, user: str) -> None:
    client, _ = site
    log_in(client, user)
    for lang, words in (("en", "Active sessions"), ("ru", "Активные сеансы")):
        r = client.get(f"{W}/security", params={"lang": lang})
        assert r.status_code == 200 and words in r.text and 'id="nav-security"' in r.text
    page = client.get(f"{W}/security")
    bad = client.post(f"{W}/security/email", data={"email": "почта-без-собаки", "csrf": csrf_of(page.text)})
    assert bad.status_code == 422 and "не адрес электронной почты" in field_error(bad.text, "email")
    taken = "viewer@uk.example" if user == "disp" else "disp@uk.example"
    dup = client.post(f"{W}/security/email", data={"email": taken, "csrf": csrf_of(page.text)})
    assert dup.status_code == 422 and "у другого пользователя" in field_error(dup.text, "email")
    ok = client.post(f"{W}/security/email", data={"email": f"{user}@new.example", "csrf": csrf_of(page.text)})
    assert "E-mail сохранён" in ok.text and f'value="{user}@new.example"' in ok.text
