"""Manual readings entry: find meters, see the last and the expected value beside each
field, save through the readings service (the same checks as the API and billing:
capacity, window, reverse vs rollover, far above the expected value needs a tick)."""
from __future__ import annotations

from datetime import datetime

import psycopg
from fastapi import APIRouter, Depends, Request

from askue.headend import names
from askue.headend.auth.permissions import Action
from askue.headend.errors import Invalid
from askue.headend.readings import rejections, service
from askue.headend.readings.channels import display_channels
from askue.headend.storage.queries import meters as mq
from askue.headend.web.deps import WebUser, check_csrf, conn, html_errors, render, web_user

router = APIRouter()
MAX_METERS = 50


def channel_label(obis: str, lang: str) -> str:
    return names.channel(obis, lang)


def channels(m: dict) -> list[str]:
    return display_channels(m["resource"], m["tariff_zones"])


async def _rows(c, w: WebUser, q: str, at: datetime) -> list[dict]:
    meters = await mq.list_meters(c, mq.MeterFilter(q=q, status="active"), w.principal.scope, None, MAX_METERS)
    return [{"meter": m, "obis": obis, "exp": await service.expected(c, w.principal, m["code"], obis, at)}
            for m in meters for obis in channels(m)]


@router.get("/readings")
@html_errors
async def readings_form(request: Request, q: str = "", w: WebUser = Depends(web_user),
                        c: psycopg.AsyncConnection = Depends(conn)):
    now = datetime.now(w.tz).replace(second=0, microsecond=0)
    rows = await _rows(c, w, q, now) if q.strip() else []
    return render(request, "readings.html", {"q": q, "rows": rows, "at": now, "results": None}, w)


def _number(text: str) -> float:
    try:
        return float(text.replace(",", ".").replace(" ", "").replace("\u00a0", ""))
    except ValueError:
        raise Invalid("value", f"«{text[:40]}» is not a number", f"«{text[:40]}» — не число") from None


@router.post("/readings")
@html_errors
async def readings_save(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    form = await request.form()
    check_csrf(w, str(form.get("csrf", "")))
    w.principal.require(Action.READINGS_ENTER)
    q = str(form.get("q", ""))
    try:
        at = datetime.fromisoformat(str(form.get("at", ""))).replace(tzinfo=w.tz)
    except ValueError:
        raise Invalid("at", "reading time: YYYY-MM-DDThh:mm", "время снятия показаний: ГГГГ-ММ-ДДTчч:мм") from None
    comment = str(form.get("comment", ""))[:2000]
    inputs, results, typos = [], [], []
    for key, raw in form.multi_items():
        if not key.startswith("v|") or not str(raw).strip():
            continue
        _, code, obis = key.split("|", 2)
        text = str(raw).strip()
        try:
            inputs.append(service.ReadingInput(code, obis, _number(text), at, comment=comment))
        except Invalid as e:
            results.append({"meter": code, "obis": obis, "channel": channel_label(obis, w.lang), "ok": False,
                            "value": text, "status": "rejected", "error": e.text(w.lang)})
            typos.append(rejections.Rejection("manual", e.message, e.message_ru, meter_ref=code, obis=obis,
                                              value_text=text, ts=at, field="value"))
    await rejections.record(c, w.principal, typos)
    outcomes = await service.submit(c, w.principal, inputs, confirm=form.get("confirm") == "1") if inputs else []
    for o in outcomes:
        results.append({"meter": o.input.meter, "obis": o.input.obis, "channel": channel_label(o.input.obis, w.lang),
                        "ok": o.status == "accepted",
                        "value": o.input.value, "status": o.status, "reasons": o.reasons,
                        "error": o.error.text(w.lang) if o.error else ""})
    rows = await _rows(c, w, q, datetime.now(w.tz)) if q.strip() else []
    status = 200 if all(r["ok"] for r in results) else 422
    return render(request, "readings.html", {"q": q, "rows": rows, "at": at, "results": results,
                                             "confirm_needed": any(r["status"] == "needs_confirmation"
                                                                   for r in results)}, w, status_code=status)
