"""Manual readings entry: find meters, see the last and the expected value beside
each field (VEE's `expected_value`), save through VEE's `enter_reading` (quality M,
checked, audited)."""
from __future__ import annotations

from datetime import datetime

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request

from askue.headend.api.auth import org_scope
from askue.headend.storage.queries import meters as mq
from askue.headend.vee import api as vapi
from askue.headend.vee.rules.common import MAIN_REGISTER
from askue.headend.web.deps import WebUser, check_csrf, conn, html_errors, render, require_writer, web_user

router = APIRouter()
MAX_METERS = 50


def channels(m: dict) -> list[str]:
    """Registers an operator reads off the display: per tariff zone for electricity."""
    if m["resource"] == "electricity":
        zones = [0] + (list(range(1, m["tariff_zones"] + 1)) if m["tariff_zones"] > 1 else [])
        return [f"1.0.1.8.{z}.255" for z in zones]
    return [MAIN_REGISTER.get(m["resource"], MAIN_REGISTER["electricity"])]


async def _rows(c, w: WebUser, q: str, at: datetime) -> list[dict]:
    meters = await mq.list_meters(c, mq.MeterFilter(q=q, status="active"), org_scope(w.principal, "m.org_id"),
                                  None, MAX_METERS)
    out = []
    for m in meters:
        mrow = await vapi._meter(c, m["code"], w.principal)
        for obis in channels(m):
            exp = await vapi.expected_value(c, mrow, obis, at)
            out.append({"meter": m, "obis": obis, "exp": exp})
    return out


@router.get("/readings")
@html_errors
async def readings_form(request: Request, q: str = "", w: WebUser = Depends(web_user),
                        c: psycopg.AsyncConnection = Depends(conn)):
    now = datetime.now(w.tz).replace(second=0, microsecond=0)
    rows = await _rows(c, w, q, now) if q.strip() else []
    return render(request, "readings.html", {"q": q, "rows": rows, "at": now, "results": None}, w)


@router.post("/readings")
@html_errors
async def readings_save(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    form = await request.form()
    check_csrf(w, str(form.get("csrf", "")))
    require_writer(w)
    q = str(form.get("q", ""))
    try:
        at = datetime.fromisoformat(str(form.get("at", ""))).replace(tzinfo=w.tz)
    except ValueError:
        raise HTTPException(422, "время снятия показаний: ГГГГ-ММ-ДДTчч:мм" if w.lang == "ru"
                            else "reading time: YYYY-MM-DDThh:mm") from None
    results = []
    for key, raw in form.multi_items():
        if not key.startswith("v|") or not str(raw).strip():
            continue
        _, code, obis = key.split("|", 2)
        text = str(raw).strip().replace(",", ".").replace(" ", "")
        try:
            value = float(text)
            body = vapi.ManualReading(obis=obis, ts=at, value=value, comment=str(form.get("comment", "")) or None)
            res = await vapi.enter_reading(code, body, request, w.principal, c)
            results.append({"meter": code, "obis": obis, "ok": True, "value": value, "res": res})
        except HTTPException as e:
            results.append({"meter": code, "obis": obis, "ok": False, "value": text, "error": e.detail})
        except ValueError as e:  # float() or the model's own checks
            results.append({"meter": code, "obis": obis, "ok": False, "value": text,
                            "error": str(e).splitlines()[-1] if str(e) else "bad number"})
    rows = await _rows(c, w, q, datetime.now(w.tz)) if q.strip() else []
    status = 200 if all(r["ok"] for r in results) else 422
    return render(request, "readings.html", {"q": q, "rows": rows, "at": at, "results": results}, w,
                  status_code=status)
