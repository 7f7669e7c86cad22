"""Account security in headless Chromium against a real head-end (uvicorn) on PostgreSQL
and a real SMTP server (aiosmtpd, STARTTLS + AUTH LOGIN):

- a dispatcher opens «Безопасность» from their name in the header, is refused a weak
  password next to the field, changes it (the other browser's session ends), ends a
  session from the list with «Завершить», then forgets the password, gets the letter,
  follows its link, is refused a weak one, sets a new one and logs in; the spent and an
  expired link say so;
- a viewer switches on the second factor with the QR code page (a wrong code is refused
  next to the field), keeps the recovery codes, and logs in with a code pyotp computes
  from the secret the page showed;
- wrong passwords end in the rate limit's refusal.

Screenshots (1366×768) go to test-artifacts/screenshots/, and with
ASKUE_UPDATE_SCREENSHOTS=1 to docs/screenshots/ too (the `security_*` ones the docs show)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pyotp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "headend"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from alert_servers import SmtpServer  # noqa: E402
from test_account_security import NEW, PASSWORD, _users, link_of, wait_mail  # noqa: E402
from test_alerts_map_browser import in_thread, page, shot  # noqa: E402, F401  (page: a fixture)
from test_operator_browser import _Server, browser  # noqa: E402, F401  (browser: a fixture)

from askue.headend.auth import ratelimit  # noqa: E402


class World:
    def __init__(self, url: str, dsn: str, smtp: SmtpServer) -> None:
        self.url, self.dsn, self.smtp = url, dsn, smtp


@pytest.fixture
def world(pg_dsn: str, tmp_path: Path):
    in_thread(_users, pg_dsn)
    with SmtpServer(tmp_path) as smtp:
        server = _Server(pg_dsn, **smtp.settings())
        with server as url:
            yield World(url, pg_dsn, smtp)


def log_in(pg, url: str, user: str, password: str = PASSWORD) -> None:
    pg.goto(f"{url}/login")
    pg.fill("input[name=login]", user)
    pg.fill("input[name=password]", password)
    pg.click("button[type=submit]")


def error_under(pg, field_id: str, err_id: str) -> str:
    """The message shown right under its field."""
    err = pg.locator(f"#{err_id}")
    err.wait_for()
    box_f, box_e = pg.locator(f"#{field_id}").bounding_box(), err.bounding_box()
    assert 0 <= box_e["y"] - (box_f["y"] + box_f["height"]) < 40 or abs(box_e["y"] - box_f["y"]) < 30
    return err.inner_text()


def test_change_password_sessions_and_reset_by_email(world: World, page, browser) -> None:  # noqa: F811
    url = world.url
    elsewhere = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU").new_page()
    log_in(elsewhere, url, "disp")
    elsewhere.wait_for_url(f"{url}/", wait_until="domcontentloaded")
    log_in(page, url, "disp")
    page.wait_for_url(f"{url}/", wait_until="domcontentloaded")
    page.click("#nav-security")
    page.wait_for_url("**/security")
    assert page.locator("#sessions tbody tr").count() == 2
    assert page.locator("#sessions tr.current").inner_text().count("Этот сеанс") == 1
    shot(page, "security_01_page")
    # a weak password is refused next to the field; nothing changes
    page.expected_statuses += [422, 403, 404, 410, 401, 429]
    page.fill("#f-old", PASSWORD)
    page.fill("#f-new", "qwerty123")
    page.fill("#f-again", "qwerty123")
    page.click("#password-save")
    assert "подбирают первым" in error_under(page, "f-new", "err-new")
    page.locator("#err-new").scroll_into_view_if_needed()
    shot(page, "security_02_weak_password")
    page.fill("#f-old", PASSWORD)
    page.fill("#f-new", "весенний-ветер-42")
    page.fill("#f-again", "весенний-ветер-42")
    page.click("#password-save")
    page.wait_for_selector("#flash")
    assert "Другие сеансы завершены" in page.inner_text("#flash")
    elsewhere.goto(f"{url}/security")
    assert "/login" in elsewhere.url  # the other browser was logged out
    # «Завершить» one session from the list
    log_in(elsewhere, url, "disp", "весенний-ветер-42")
    elsewhere.wait_for_url(f"{url}/", wait_until="domcontentloaded")
    page.reload()
    other = page.locator("#sessions tbody tr:not(.current)")
    assert other.count() == 1 and "Chrome" in other.inner_text()
    other.locator("button", has_text="Завершить").click()
    page.wait_for_selector("#flash")
    assert page.inner_text("#flash") == "Сеанс завершён." and page.locator("#sessions tbody tr").count() == 1
    elsewhere.goto(f"{url}/")
    assert "/login" in elsewhere.url
    elsewhere.context.close()
    # forgotten: reset by e-mail
    page.click("header .who button")  # «Выйти»
    page.wait_for_url("**/login")
    page.click("#forgot-link")
    page.fill("#f-ident", "disp@uk.example")
    page.click("#reset-send")
    page.wait_for_selector("#reset-sent")
    shot(page, "security_03_reset_requested")
    notice = wait_mail(world.smtp, "disp@uk.example")  # of the password change above
    assert "изменён пароль" in notice.text and notice.message["Subject"] == "АСКУЭ: изменение безопасности учётной записи"
    letter = wait_mail(world.smtp, "disp@uk.example", 2)
    assert letter.tls and letter.message["Subject"] == "АСКУЭ: восстановление пароля"
    link = link_of(letter.text)
    assert link.startswith(f"{url}/password/reset?token=")  # built from public_url (the server's address here)
    page.goto(link)
    assert "Логин disp" in page.inner_text("form")
    page.fill("#f-password", "disp12345")
    page.fill("#f-again", "disp12345")
    page.click("#reset-save")
    assert "логин" in error_under(page, "f-password", "err-password")
    shot(page, "security_04_reset_weak")
    page.fill("#f-password", NEW)
    page.fill("#f-again", NEW)
    page.click("#reset-save")
    page.wait_for_selector("#reset-done")
    shot(page, "security_05_reset_done")
    log_in(page, url, "disp", NEW)
    page.wait_for_url(f"{url}/", wait_until="domcontentloaded")
    page.goto(link)  # spent
    assert "уже использована" in page.inner_text("#err-token")
    shot(page, "security_06_link_used")
    page.goto(f"{url}/password/forgot")
    page.fill("#f-ident", "disp")
    page.click("#reset-send")
    page.wait_for_selector("#reset-sent")
    assert "задан новый пароль по ссылке" in wait_mail(world.smtp, "disp@uk.example", 3).text
    second = wait_mail(world.smtp, "disp@uk.example", 4)
    assert second.message["Subject"] == "АСКУЭ: восстановление пароля"
    with psycopg.connect(world.dsn, autocommit=True) as c:
        c.execute("UPDATE password_resets SET expires_at = now() - interval '1 s' WHERE used_at IS NULL")
    page.goto(link_of(second.text))
    assert "Срок ссылки истёк" in page.inner_text("#err-token")
    page.click("#reset-again")
    page.wait_for_url("**/password/forgot")


def scan_qr(png: Path) -> str:
    if not shutil.which("zbarimg"):
        pytest.fail("zbarimg is missing: apt-get install -y zbar-tools (scripts/bootstrap-system.sh chromium does it)")
    out = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_totp_enrol_and_login_with_a_code(world: World, page, tmp_path: Path) -> None:  # noqa: F811
    url = world.url
    log_in(page, url, "viewer1")
    page.wait_for_url(f"{url}/", wait_until="domcontentloaded")
    page.goto(f"{url}/security")
    assert "Выключен" in page.inner_text("#totp-state")
    page.click("#totp-enable")
    page.wait_for_url("**/security/totp")
    qr = page.locator("#totp-qr")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 100")
    shot(page, "security_07_totp_qr")
    # what a phone's camera reads: the QR code as Chromium drew it, decoded by zbar
    png = tmp_path / "qr.png"
    qr.screenshot(path=str(png))
    uri = scan_qr(png)
    totp = pyotp.parse_uri(uri)
    secret = totp.secret
    assert uri.startswith("otpauth://totp/") and totp.name == "viewer1" and totp.issuer == "АСКУЭ"
    assert page.inner_text("#totp-secret").replace(" ", "") == secret  # the key typed by hand is the same
    page.expected_statuses += [422, 401]
    now = pyotp.TOTP(secret).now()
    page.fill("#f-code", "000000" if now != "000000" else "111111")
    page.click("#totp-confirm")
    assert "код не подходит" in error_under(page, "f-code", "err-code")
    shot(page, "security_08_totp_wrong_code")
    page.fill("#f-code", pyotp.TOTP(secret).now())
    page.click("#totp-confirm")
    page.wait_for_selector("#recovery-codes")
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and "Резервных кодов осталось: 10" in page.inner_text("#totp-state")
    shot(page, "security_09_totp_on_codes")
    page.click("header .who button")
    page.wait_for_url("**/login")
    log_in(page, url, "viewer1")
    page.wait_for_selector("#f-code")
    assert "Введите код из приложения" in page.inner_text("form")
    shot(page, "security_10_login_code")
    page.fill("#f-code", "123 456" if pyotp.TOTP(secret).now() != "123456" else "654 321")
    page.click("button[type=submit]")
    assert "Код не подходит" in page.inner_text("#login-error")
    # enrolment spent this step's code; the next step's is accepted (a phone clock a little ahead)
    page.fill("#f-code", pyotp.TOTP(secret).at(time.time() + 30))
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/", wait_until="domcontentloaded")
    assert page.locator("#nav-security").is_visible()


def test_wrong_passwords_end_in_the_rate_limits_refusal(world: World, page) -> None:  # noqa: F811
    url = world.url
    page.expected_statuses += [401, 429]
    for _ in range(ratelimit.MAX_FAILURES_PER_LOGIN):
        log_in(page, url, "disp", "не-тот-пароль")
        assert page.inner_text("#login-error") == "Неверный логин или пароль"
    log_in(page, url, "disp")  # even the right password is refused now
    msg = page.inner_text("#login-error")
    assert re.fullmatch(r"Слишком много неудачных попыток\. Повторите через 1[45] мин\.", msg), msg
    shot(page, "security_11_rate_limited")
    page.click("#forgot-link")  # the way out: a reset is not locked by wrong passwords
    page.fill("#f-ident", "disp")
    page.click("#reset-send")
    page.wait_for_selector("#reset-sent")
