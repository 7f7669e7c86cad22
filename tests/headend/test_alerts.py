"""Alerts over real servers: subscriptions made on the page by each role, events written
as VEE and operators write them, the outbox sending through a real SMTP server
(aiosmtpd: STARTTLS and AUTH LOGIN, or implicit TLS) and to a local webhook receiver that
fails first (retries with backoff) — each event once, its resolution once, nothing lost
or repeated across restarts, and nobody told about another organisation's events."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from pathlib import Path

import psycopg
import pytest
from alert_servers import HookReceiver, SmtpServer
from fastapi.testclient import TestClient
from test_web_fixtures import build
from test_web_pages import W, csrf_of, login

from askue.headend.api.app import create_app
from askue.headend.app import open_pool
from askue.headend.config import ConfigError, Settings, load_settings
from askue.headend.notify import worker
from askue.headend.notify.mail import MailError, MailSettings, send_mail

PUBLIC = "https://askue.uk.example"


def run_worker(settings: Settings, rounds: int = 1, pause: float = 0.0) -> list[tuple[int, int]]:
    """What the head-end's task does, `rounds` times, in a process of its own (a new pool)."""
    async def go():
        pool = await open_pool(settings)
        try:
            out = []
            for i in range(rounds):
                if i and pause:
                    await asyncio.sleep(pause)
                out.append(await worker.run_once(pool, worker.Channels.from_settings(settings)))
            return out
        finally:
            await pool.close()
    return asyncio.run(go())


def raise_event(dsn: str, meter: str, kind: str, severity: str, evidence: dict, title: str, title_en: str) -> int:
    """An event as VEE's store inserts it."""
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute(
            "INSERT INTO abnormal_events (kind, severity, meter_id, site_id, org_id, account_id, gateway_id, obis, ts, "
            "dedup_key, title, title_en, evidence) SELECT %s, %s, m.id, m.site_id, m.org_id, m.account_id, "
            "m.gateway_id, '1.0.1.8.0.255', now() - interval '1 hour', %s, %s, %s, %s FROM meters m WHERE m.code = %s "
            "RETURNING id", (kind, severity, f"{kind}:{meter}:{time.time_ns()}", title, title_en,
                             json.dumps(evidence), meter)).fetchone()[0]


REVERSE = {"previous": 1036.9, "previous_ts": "2026-11-20T09:00:00+00:00", "current": 1012.4, "drop": 24.5}


@pytest.fixture
def site(pg_dsn: str, tmp_path: Path, smtp: SmtpServer):
    facts = build(pg_dsn, tmp_path)
    settings = Settings(dsn=pg_dsn, public_url=PUBLIC, notify_retry_base_s=0.2, **smtp.settings())
    run_worker(settings)  # the running head-end has seen the fixture's events before anyone subscribes
    with TestClient(create_app(settings)) as client:
        yield client, facts, settings


@pytest.fixture(scope="module")
def shared_site(pg_cluster, pg_template, tmp_path_factory):
    """One database for checks that change nothing (building one takes seconds)."""
    name = "alerts_shared"
    dsn = pg_cluster.create_database(name, template=pg_template)
    try:
        build(dsn, tmp_path_factory.mktemp("alerts"))
        with TestClient(create_app(Settings(dsn=dsn))) as client:
            yield client, dsn
    finally:
        pg_cluster.drop_database(name)


def subscribe(client: TestClient, user: str, **form) -> TestClient:
    client.cookies.clear()
    assert login(client, user).status_code == 303
    csrf = csrf_of(client.get(W + "/alerts").text)
    data = {"csrf": csrf, "channel": "email", "min_severity": "warning", "send_resolved": "true", "active": "true"}
    r = client.post(W + "/alerts", data=data | form, follow_redirects=False)
    assert r.status_code == 303, r.text[-2000:]
    return client


# ---- the mail sender ------------------------------------------------------------------
def test_send_mail_with_starttls_and_auth_login(smtp: SmtpServer) -> None:
    cfg = MailSettings.from_settings(Settings(**smtp.settings()))
    mid = asyncio.run(send_mail(cfg, "disp@uk.example", "АСКУЭ: проверка", "Нет связи более 10 дн."))
    (got,) = smtp.received
    assert got.tls and got.login == "askue-alerts" and smtp.mechanisms == ["LOGIN"]
    assert got.message["Subject"] == "АСКУЭ: проверка" and got.message["Message-ID"] == mid
    assert got.text.strip() == "Нет связи более 10 дн." and got.mail_from == "askue@uk.example"
    # a wrong password, a certificate nobody vouched for, no TLS where the server wants it
    for change, words, permanent in (({"password": "wrong"}, "refused the login", False),
                                     ({"ca_file": None}, "CERTIFICATE_VERIFY_FAILED", False),
                                     ({"security": "none"}, "smtp_security: starttls", True)):
        with pytest.raises(MailError, match=words) as e:
            asyncio.run(send_mail(MailSettings(**cfg.__dict__ | change), "x@uk.example", "s", "t"))
        assert e.value.permanent is permanent
    assert len(smtp.received) == 1


def test_send_mail_over_implicit_tls(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, implicit_tls=True) as s:
        cfg = MailSettings.from_settings(Settings(**s.settings()))
        asyncio.run(send_mail(cfg, ["a@uk.example", "b@uk.example"], "АСКУЭ", "текст"))
        (got,) = s.received
        assert got.tls and got.login == "askue-alerts" and sorted(got.rcpt_tos) == ["a@uk.example", "b@uk.example"]


def test_smtp_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="smtp_from"):
        load_settings(env={}, smtp_host="mail.uk.example")
    with pytest.raises(ConfigError, match="ASCII"):
        load_settings(env={}, smtp_host="m", smtp_from="a@b.ru", smtp_username="почта", smtp_password="x")
    with pytest.raises(ConfigError, match="smtp_security"):
        load_settings(env={"ASKUE_SMTP_SECURITY": "ssl3"})
    s = load_settings(env={"ASKUE_SMTP_HOST": "m", "ASKUE_SMTP_FROM": "a@b.ru", "ASKUE_PUBLIC_URL": "https://x.ru/"})
    assert s.smtp_port == 587 and s.smtp_security == "starttls" and s.base_url == "https://x.ru"


# ---- the outbox ------------------------------------------------------------------------
def test_the_outbox_gets_each_transition_once(pg_dsn: str, tmp_path: Path) -> None:
    build(pg_dsn, tmp_path)
    e1 = raise_event(pg_dsn, "e1", "reverse_reading", "critical", REVERSE, "Обратный ход показаний", "Reverse")
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        rows = lambda: c.execute("SELECT event_id, transition FROM notify_outbox WHERE event_id >= %s "  # noqa: E731
                                 "ORDER BY id", (e1,)).fetchall()
        assert rows() == [(e1, "raised")]
        c.execute("UPDATE abnormal_events SET state = 'acknowledged' WHERE id = %s", (e1,))
        c.execute("UPDATE abnormal_events SET state = 'resolved', resolved_by = 'disp' WHERE id = %s", (e1,))
        c.execute("UPDATE abnormal_events SET comment = 'ещё' WHERE id = %s", (e1,))
        assert rows() == [(e1, "raised"), (e1, "resolved")]
        # VEE's batch insert and its auto-close of several at once
        ids = [r[0] for r in c.execute(
            "INSERT INTO abnormal_events (kind, severity, meter_id, org_id, dedup_key, state) "
            "SELECT 'no_contact', 'warning', m.id, m.org_id, 'nc-batch:' || m.code, 'open' FROM meters m "
            "WHERE m.code IN ('e5', 'e6', 'e7') RETURNING id").fetchall()]
        c.execute("UPDATE abnormal_events SET state = 'resolved', cleared_at = now(), auto_closed = true, "
                  "resolved_by = 'vee' WHERE id = ANY(%s)", (ids,))
        got = rows()[2:]
        assert sorted(got) == sorted([(i, "raised") for i in ids] + [(i, "resolved") for i in ids])


# ---- end to end through the page, SMTP and a webhook ------------------------------------
def test_each_event_and_its_resolution_reach_each_subscriber_once(site, smtp: SmtpServer, pg_dsn: str) -> None:
    client, facts, settings = site
    with HookReceiver([503, 503]) as hook:
        subscribe(client, "uk1adm", target="uk1@uk.example")  # org_admin of uk1, every kind from warning
        subscribe(client, "uk2adm", target="uk2@uk.example")
        subscribe(client, "admin", target="chief@uk.example", min_severity="critical")
        subscribe(client, "disp", channel="webhook", target=hook.url, secret="s3cret", kinds="reverse_reading")
        e1 = raise_event(pg_dsn, "e1", "reverse_reading", "critical", REVERSE, "Обратный ход показаний",
                         "Reverse reading")
        e2 = raise_event(pg_dsn, "e2", "no_contact", "warning", {"last_session": "2026-11-01T10:00:00+00:00"},
                         "Нет связи со счётчиком", "No contact")
        run_worker(settings)
        # e-mail: uk1's admin hears of e1 only, uk2's of e2 only, the admin of the critical one
        (m1,) = smtp.to("uk1@uk.example")
        assert m1.message["Subject"] == "АСКУЭ: критично — Обратный ход показаний, прибор e1 (ул. Ленина 1)"
        text = m1.text
        assert f"Нештатная ситуация № {e1}: Обратный ход показаний" in text
        assert "Предыдущие показания 1\u00a0036,9 кВт·ч" in text and "уменьшение на 24,5 кВт·ч" in text
        assert "Организация: УК Север" in text and "Прибор учёта: e1 (заводской № S-E1)" in text
        assert "Адрес: ул. Ленина 1, кв. 1" in text and "время Europe/Moscow (UTC+03:00)" in text
        assert f"Открыть: {PUBLIC}/web/events/{e1}" in text and f"{PUBLIC}/web/alerts" in text
        (m2,) = smtp.to("uk2@uk.example")
        assert "Нет связи со счётчиком" in m2.message["Subject"] and "прибор e2" in m2.message["Subject"]
        assert "Нет связи более" in m2.text and "e1" not in m2.text
        assert [m.message["Subject"] for m in smtp.to("chief@uk.example")] == [m1.message["Subject"]]
        assert all(m.tls and m.login == "askue-alerts" for m in smtp.received)
        # webhook: 503 → the delivery waits and is retried with backoff
        assert hook.answered == [503]
        with psycopg.connect(pg_dsn) as c:
            state, attempts, err = c.execute("SELECT state, attempts, last_error FROM notify_deliveries "
                                             "WHERE channel = 'webhook'").fetchone()
        assert (state, attempts) == ("pending", 1) and "503" in err
        run_worker(settings, rounds=4, pause=0.5)
        assert hook.answered == [503, 503, 200]
        bodies = [r.json for r in hook.requests]
        assert len({r.headers["x-askue-delivery"] for r in hook.requests}) == 1  # the same notice each time
        for r in hook.requests:
            assert r.headers["x-askue-signature"] == "sha256=" + hmac.new(b"s3cret", r.body, hashlib.sha256).hexdigest()
        ev = bodies[-1]["event"]
        assert bodies[-1]["notification"] == "raised" and bodies[-1]["version"] == 1
        assert (ev["id"], ev["kind"], ev["severity"], ev["meter"]["code"], ev["organisation"]["code"]) == \
            (e1, "reverse_reading", "critical", "e1", "uk1")
        assert ev["url"] == f"{PUBLIC}/web/events/{e1}" and ev["description"].startswith("Предыдущие показания")
        assert ev["description_en"].startswith("Previous reading") and ev["observed_at"].endswith("+03:00")
        # nothing new: nothing sent again
        before = (len(smtp.received), len(hook.requests))
        run_worker(settings, rounds=2)
        assert (len(smtp.received), len(hook.requests)) == before
        # the dispatcher resolves e1 on the page: its resolution goes to those who heard of it
        client.cookies.clear()
        login(client, "disp")
        csrf = csrf_of(client.get(f"{W}/events/{e1}").text)
        assert client.post(f"{W}/events/{e1}/resolve", data={"comment": "Замена счётчика, акт № 17",
                                                              "csrf": csrf}).status_code == 200
        run_worker(settings)
        (r1,) = smtp.to("uk1@uk.example")[1:]
        assert r1.message["Subject"] == "АСКУЭ: устранено — Обратный ход показаний, прибор e1 (ул. Ленина 1)"
        assert "— устранена" in r1.text and "Кем: disp" in r1.text and "Комментарий: Замена счётчика, акт № 17" in r1.text
        assert len(smtp.to("chief@uk.example")) == 2 and len(smtp.to("uk2@uk.example")) == 1
        last = hook.requests[-1].json
        assert last["notification"] == "resolved" and last["event"]["state"] == "resolved"
        assert last["event"]["resolved_by"] == "disp" and last["event"]["comment"] == "Замена счётчика, акт № 17"
        # VEE closes e2 by itself: uk2's admin is told, nobody else
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            c.execute("UPDATE abnormal_events SET state = 'resolved', resolved_by = 'vee', resolved_at = now(), "
                      "cleared_at = now(), auto_closed = true WHERE id = %s", (e2,))
        run_worker(settings)
        assert "автоматически: условие устранено" in smtp.to("uk2@uk.example")[1].text
        assert len(smtp.received) == 6 and len(hook.requests) == 4
    # the link in the e-mail opens the event for its organisation's admin, not for the other
    client.cookies.clear()
    login(client, "uk1adm")
    page = client.get(f"{W}/events/{e1}")
    assert page.status_code == 200 and "Предыдущие показания" in page.text and "Europe/Moscow" in page.text
    client.cookies.clear()
    login(client, "uk2adm")
    assert client.get(f"{W}/events/{e1}").status_code == 404
    assert f"/events/{e1}" not in client.get(W + "/alerts").text  # nor in its list of notices


def test_a_restart_neither_loses_nor_repeats(site, smtp: SmtpServer, pg_dsn: str) -> None:
    """The outbox is written with the event; a head-end killed before sending sends after its
    restart, and one killed while a message is on the wire leaves that message unsent in the
    database (its transaction never committed), so the next process sends it once more —
    with the same X-Askue-Delivery, which is how a receiver recognises it."""
    client, _, settings = site
    with HookReceiver() as hook:
        subscribe(client, "uk1adm", target="uk1@uk.example", min_severity="info")
        subscribe(client, "disp", channel="webhook", target=hook.url)
        e = [raise_event(pg_dsn, m, "reverse_reading", "critical", REVERSE, "Обратный ход показаний", "Reverse")
             for m in ("e1", "e3", "e5")]
        # a head-end that stops in the middle of a round: cancelled while the webhook is on the wire
        hook.delay = 3.0

        async def killed_mid_send():
            pool = await open_pool(settings)
            try:
                task = asyncio.create_task(worker.run_once(pool, worker.Channels.from_settings(settings)))
                for _ in range(200):  # at most 10 s
                    if hook.requests:
                        break
                    await asyncio.sleep(0.05)
                assert hook.requests, "the webhook was never called"
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            finally:
                await pool.close()
        asyncio.run(killed_mid_send())
        hook.delay = 0.0
        with psycopg.connect(pg_dsn) as c:
            sent_before = c.execute("SELECT count(*) FROM notify_deliveries WHERE state = 'sent'").fetchone()[0]
        run_worker(settings, rounds=2)  # the restarted head-end
        with psycopg.connect(pg_dsn) as c:
            states = c.execute("SELECT channel, state, count(*) FROM notify_deliveries GROUP BY 1, 2 ORDER BY 1, 2"
                               ).fetchall()
        assert states == [("email", "sent", 3), ("webhook", "sent", 3)], states
        assert sent_before < 6
        # every event reached every subscriber (the three e-mails due together went as one message);
        # only the webhook call cut off on the wire came twice
        told = [int(n) for m in smtp.received for n in re.findall(r"Нештатная ситуация № (\d+)", m.text)]
        assert sorted(told) == sorted(e) and len(smtp.received) == 1
        assert smtp.received[0].message["Subject"] == "АСКУЭ: 3 оповещений о нештатных ситуациях, 3 критично"
        deliveries = [r.headers["x-askue-delivery"] for r in hook.requests]
        assert sorted({r.json["event"]["id"] for r in hook.requests}) == sorted(e)
        assert len(deliveries) == 4 and len(set(deliveries)) == 3
        run_worker(settings)
        assert len(smtp.received) == 1 and len(hook.requests) == 4


def test_failures_are_given_up_after_the_attempts_and_permanent_ones_at_once(site, smtp: SmtpServer,
                                                                               pg_dsn: str) -> None:
    client, _, settings = site
    with HookReceiver([500] * 10) as down, HookReceiver([410]) as gone:
        subscribe(client, "disp", channel="webhook", target=down.url)
        subscribe(client, "admin", channel="webhook", target=gone.url)
        raise_event(pg_dsn, "e1", "reverse_reading", "critical", REVERSE, "Обратный ход показаний", "Reverse")
        fast = settings.model_copy(update={"notify_max_attempts": 3, "notify_retry_base_s": 0.1})
        run_worker(fast, rounds=6, pause=0.3)
        assert down.answered == [500, 500, 500] and gone.answered == [410]
    with psycopg.connect(pg_dsn) as c:
        rows = dict(c.execute("SELECT target, state || ' ' || attempts FROM notify_deliveries").fetchall())
    assert rows == {down.url: "failed 3", gone.url: "failed 1"}
    client.cookies.clear()
    login(client, "admin")
    page = client.get(W + "/alerts").text
    assert "не доставлено" in page and "410" in page


# ---- the page: bad input, roles, organisations -------------------------------------------
def _count(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT (SELECT count(*) FROM notify_subscriptions), (SELECT count(*) FROM audit_log)"
                         ).fetchone()


@pytest.mark.parametrize("user, form, field, words", [
    ("uk1adm", {"target": "uk1-at-example"}, "target", "не адрес электронной почты"),
    ("uk1adm", {"target": ""}, "target", "укажите адрес электронной почты"),
    ("uk1adm", {"channel": "webhook", "target": "ftp://hooks.example/x"}, "target", "не адрес http(s)"),
    ("uk1adm", {"channel": "webhook", "target": "https://u:p@hooks.example/x"}, "target", "не указывайте пароль"),
    ("uk1adm", {"target": "a@uk.example", "secret": "x"}, "secret", "только для вебхука"),
    ("uk1adm", {"target": "a@uk.example", "orgs": "uk2"}, "orgs", "организация uk2 не найдена"),
    ("uk1adm", {"target": "a@uk.example", "kinds": "earthquake"}, "kinds", "неизвестные виды"),
    ("uk1adm", {"target": "a@uk.example", "min_severity": "apocalyptic"}, "min_severity", "важность"),
    ("viewer1", {"channel": "webhook", "target": "https://hooks.example/x"}, "channel", "только на e-mail"),
    ("disp", {"channel": "pigeon", "target": "a@uk.example"}, "channel", "выберите канал"),
])
def test_bad_input_is_shown_next_to_its_field_and_changes_nothing(shared_site, user, form, field, words) -> None:
    client, pg_dsn = shared_site
    client.cookies.clear()
    login(client, user)
    before = _count(pg_dsn)
    csrf = csrf_of(client.get(W + "/alerts").text)
    data = {"csrf": csrf, "channel": "email", "min_severity": "warning", "active": "true"} | form
    r = client.post(W + "/alerts", data=data)
    assert r.status_code == 422
    err = re.search(rf'<span class="field-error" id="err-{field}"[^>]*>([^<]+)</span>', r.text)
    assert err and words in err.group(1), r.text[-3000:]
    assert "ничего не сохранено" in r.text
    if form.get("target"):
        assert f'value="{form["target"]}"' in r.text  # what was typed stays in the form
    assert _count(pg_dsn) == before


def test_a_user_manages_only_their_own_subscriptions(site, pg_dsn: str) -> None:
    client, _, _ = site
    subscribe(client, "uk2adm", target="uk2@uk.example")
    with psycopg.connect(pg_dsn) as c:
        theirs = c.execute("SELECT id FROM notify_subscriptions").fetchone()[0]
    client.cookies.clear()
    login(client, "uk1adm")
    page = client.get(W + "/alerts").text
    assert "УК Север" in page and "УК Юг" not in page  # only its organisations to choose from
    assert "uk2@uk.example" not in page
    assert client.get(W + "/alerts", params={"edit": theirs}).status_code == 404
    csrf = csrf_of(page)
    before = _count(pg_dsn)
    for action in ("delete", "active", "test"):
        assert client.post(f"{W}/alerts/{theirs}/{action}", data={"csrf": csrf, "active": "false"}).status_code == 404
    r = client.post(W + "/alerts", data={"csrf": csrf, "id": str(theirs), "channel": "email",
                                          "target": "mine@uk.example", "min_severity": "info"})
    assert r.status_code == 404
    assert client.post(W + "/alerts", data={"csrf": "forged", "channel": "email",
                                            "target": "x@uk.example"}).status_code == 403
    assert _count(pg_dsn) == before
    # changing, switching off and deleting one's own, each audited
    subscribe(client, "uk1adm", target="uk1@uk.example", kinds="tamper", orgs="uk1")
    with psycopg.connect(pg_dsn) as c:
        mine = c.execute("SELECT id FROM notify_subscriptions WHERE target = 'uk1@uk.example'").fetchone()[0]
    csrf = csrf_of(client.get(W + "/alerts").text)
    r = client.post(W + "/alerts", data={"csrf": csrf, "id": str(mine), "channel": "email", "target": "uk1@uk.example",
                                          "min_severity": "critical", "kinds": ["tamper", "reverse_reading"],
                                          "active": "true"}, follow_redirects=False)
    assert r.status_code == 303
    client.post(f"{W}/alerts/{mine}/active", data={"csrf": csrf, "active": "false"})
    with psycopg.connect(pg_dsn) as c:
        row = c.execute("SELECT kinds, min_severity, send_resolved, active FROM notify_subscriptions WHERE id = %s",
                        (mine,)).fetchone()
        assert row == (["reverse_reading", "tamper"], "critical", False, False)
        client.post(f"{W}/alerts/{mine}/delete", data={"csrf": csrf})
        assert c.execute("SELECT count(*) FROM notify_subscriptions WHERE id = %s", (mine,)).fetchone()[0] == 0
        actions = [a for (a,) in c.execute("SELECT action FROM audit_log WHERE actor = 'uk1adm' AND object_type = "
                                           "'alert_subscription' ORDER BY id")]
    assert actions == ["alert_subscription_create", "alert_subscription_update", "alert_subscription_update",
                       "alert_subscription_delete"]


def test_send_test_reports_success_and_the_reason_of_a_failure(site, smtp: SmtpServer, pg_dsn: str) -> None:
    client, _, _ = site
    subscribe(client, "disp", target="disp@uk.example")
    subscribe(client, "disp", channel="webhook", target="http://127.0.0.1:1/nothing-listens")
    with psycopg.connect(pg_dsn) as c:
        ids = dict(c.execute("SELECT channel, id FROM notify_subscriptions").fetchall())
    csrf = csrf_of(client.get(W + "/alerts").text)
    r = client.post(f"{W}/alerts/{ids['email']}/test", data={"csrf": csrf})
    assert r.status_code == 200 and "Проверочное оповещение отправлено на disp@uk.example" in r.text
    (m,) = smtp.to("disp@uk.example")
    assert m.message["Subject"] == "АСКУЭ: проверка оповещений" and "подписка работает" in m.text
    r = client.post(f"{W}/alerts/{ids['webhook']}/test", data={"csrf": csrf})
    assert "не отправлено" in r.text and "127.0.0.1:1" in r.text
    with psycopg.connect(pg_dsn) as c:  # a test is no event: nothing queued
        assert c.execute("SELECT count(*) FROM notify_deliveries").fetchone()[0] == 0


def test_without_smtp_e_mails_wait_and_the_page_says_why(pg_dsn: str, tmp_path: Path) -> None:
    build(pg_dsn, tmp_path)
    settings = Settings(dsn=pg_dsn, notify_retry_base_s=60)
    run_worker(settings)
    with TestClient(create_app(settings)) as client:
        subscribe(client, "uk1adm", target="uk1@uk.example")
        assert "Отправка e-mail не настроена" in client.get(W + "/alerts").text
        raise_event(pg_dsn, "e1", "reverse_reading", "critical", REVERSE, "Обратный ход показаний", "Reverse")
        run_worker(settings)
        page = client.get(W + "/alerts").text
        assert "ожидает отправки" in page and "smtp_host" in page
    with psycopg.connect(pg_dsn) as c:
        assert c.execute("SELECT state, attempts FROM notify_deliveries").fetchone() == ("pending", 1)


def test_the_task_is_part_of_the_headend() -> None:
    from askue.headend import composition

    assert worker.notify_task in composition.BACKGROUND_TASKS
