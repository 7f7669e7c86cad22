"""What a notification says: the e-mail (subject and text, in the recipient's language,
Russian by default) and the webhook's JSON payload, from an event as the events service
shows it (`events.service.view`: title and the sentence of `events.describe`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from askue.headend.events.describe import when, zone_label

PAYLOAD_VERSION = 1
SEVERITY = {"info": ("информация", "info"), "warning": ("предупреждение", "warning"),
            "critical": ("критично", "critical")}
STATE = {"open": ("открыто", "open"), "acknowledged": ("принято", "acknowledged"),
         "resolved": ("устранено", "resolved")}


@dataclass(frozen=True)
class Notice:
    """One notification: an event (a `view` with its context) raised, resolved, or a test."""

    delivery: str  # the same on every attempt: askue-<delivery id>
    transition: str  # raised | resolved | test
    event: dict[str, Any]
    url: str  # the event's page


def _ru(lang: str) -> int:
    return 0 if lang == "ru" else 1


def _where(ev: dict, lang: str) -> str:
    """«прибор e1 (ул. Ленина 1)» — what the subject names."""
    what = ev.get("meter") or ev.get("site") or ev.get("gateway_id") or ""
    label = ("прибор " if lang == "ru" else "meter ") + what if ev.get("meter") else what
    addr = ev.get("address")
    return f"{label} ({addr})" if label and addr else (label or addr or "")


def subject(notices: list[Notice], lang: str) -> str:
    i = _ru(lang)
    if len(notices) == 1 and notices[0].transition == "test":
        return "АСКУЭ: проверка оповещений" if lang == "ru" else "askue: alert test"
    if len(notices) == 1:
        n = notices[0]
        ev = n.event
        head = (SEVERITY.get(ev["severity"], (ev["severity"],) * 2)[i] if n.transition == "raised"
                else ("устранено", "resolved")[i])
        where = _where(ev, lang)
        return f"АСКУЭ: {head} — {ev['title']}" + (f", {where}" if where else "")
    critical = sum(1 for n in notices if n.transition == "raised" and n.event["severity"] == "critical")
    resolved = sum(1 for n in notices if n.transition == "resolved")
    parts = [f"{len(notices)} {'оповещений о нештатных ситуациях' if lang == 'ru' else 'abnormal event notices'}"]
    if critical:
        parts.append(f"{critical} {'критично' if lang == 'ru' else 'critical'}")
    if resolved:
        parts.append(f"{resolved} {'устранено' if lang == 'ru' else 'resolved'}")
    return "АСКУЭ: " + ", ".join(parts)


def _block(n: Notice, lang: str, tz: tzinfo) -> list[str]:
    ev, i = n.event, _ru(lang)
    ru = lang == "ru"
    if n.transition == "test":
        return [("Проверочное оповещение: подписка работает, нештатной ситуации нет." if ru
                 else "Test notice: the subscription works; there is no abnormal event.")]
    head = (f"Нештатная ситуация № {ev['id']}: {ev['title']}" if ru else f"Abnormal event {ev['id']}: {ev['title']}")
    if n.transition == "resolved":
        head += " — устранена" if ru else " — resolved"
    lines = [head, ""]
    if ev.get("description"):
        lines += [ev["description"], ""]
    meter, address = ev.get("meter"), ev.get("address")
    if meter and ev.get("serial"):
        meter += f" (заводской № {ev['serial']})" if ru else f" (serial {ev['serial']})"
    if address and ev.get("flat"):
        address += f", кв. {ev['flat']}" if ru else f", flat {ev['flat']}"
    rows: list[tuple[str, str | None]] = [
        (("Важность", "Severity")[i], SEVERITY.get(ev["severity"], (ev["severity"],) * 2)[i]),
        (("Организация", "Organisation")[i], ev.get("org_name") or ev.get("organisation")),
        (("Прибор учёта", "Meter")[i], meter),
        (("Лицевой счёт", "Account")[i], " ".join(x for x in (ev.get("account"), ev.get("subscriber")) if x) or None),
        (("Адрес", "Address")[i], address),
        (("Шлюз", "Gateway")[i], ev.get("gateway_id")),
        (("Зафиксировано", "Observed")[i], when(ev.get("ts") or ev["raised_at"], tz)),
    ]
    if n.transition == "resolved":
        by = ev.get("resolved_by")
        who = (("автоматически: условие устранено", "automatically: the condition cleared")[i]
               if by == "vee" else by)
        rows += [(("Устранено", "Resolved")[i], when(ev["resolved_at"], tz) if ev.get("resolved_at") else None),
                 (("Кем", "By")[i], who), (("Комментарий", "Comment")[i], ev.get("comment"))]
    lines += [f"{k}: {v}" for k, v in rows if v]
    lines += [f"({zone_label(tz, lang=lang)})", "", f"{('Открыть', 'Open')[i]}: {n.url}"]
    return lines


def email_text(notices: list[Notice], lang: str, tz: tzinfo, subscriptions_url: str) -> str:
    blocks = ["\n".join(_block(n, lang, tz)) for n in notices]
    sep = "\n\n" + "—" * 40 + "\n\n"
    footer = ("Вы получили это письмо, потому что подписаны на оповещения АСКУЭ. Изменить подписки: "
              if lang == "ru" else "You receive this because you subscribed to askue alerts. Change them: ")
    return sep.join(blocks) + "\n\n--\n" + footer + subscriptions_url + "\n"


def _iso(v: Any, tz: tzinfo) -> str | None:
    if v is None:
        return None
    t = v if isinstance(v, datetime) else datetime.fromisoformat(str(v))
    return t.astimezone(tz).isoformat()


def payload(n: Notice, tz: tzinfo, now: datetime) -> dict[str, Any]:
    """The webhook body (version 1; docs/operators.md describes every field)."""
    ev = n.event
    body: dict[str, Any] = {"version": PAYLOAD_VERSION, "delivery": n.delivery,
                            "notification": n.transition, "sent_at": now.astimezone(tz).isoformat(),
                            "timezone": getattr(tz, "key", str(tz))}
    if n.transition == "test":
        return body | {"event": None}
    body["event"] = {
        "id": ev["id"], "url": n.url, "kind": ev["kind"], "title": ev.get("title_ru") or ev["title"],
        "title_en": ev.get("title_en"), "severity": ev["severity"], "state": ev["state"],
        "description": ev.get("description_ru", ev.get("description")), "description_en": ev.get("description_en"),
        "observed_at": _iso(ev.get("ts"), tz), "raised_at": _iso(ev.get("raised_at"), tz),
        "resolved_at": _iso(ev.get("resolved_at"), tz), "resolved_by": ev.get("resolved_by"),
        "comment": ev.get("comment"), "auto_closed": bool(ev.get("auto_closed")),
        "organisation": {"code": ev["organisation"], "name": ev.get("org_name")} if ev.get("organisation") else None,
        "meter": {"code": ev["meter"], "serial": ev.get("serial"), "resource": ev.get("resource")}
        if ev.get("meter") else None,
        "account": {"code": ev["account"], "subscriber": ev.get("subscriber")} if ev.get("account") else None,
        "house": {"code": ev.get("site_code"), "address": ev.get("address")}
        if ev.get("site_code") or ev.get("address") else None,
        "gateway": ev.get("gateway_id"),
        "evidence": ev.get("evidence") or {},
    }
    return body
