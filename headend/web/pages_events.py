"""Нештатные ситуации: filters, show resolved, resolve with a comment, CSV/XLSX/PDF
export and print. Listing, scoping, transitions and export formats are VEE's
(`askue.headend.vee.api`, `askue.headend.vee.export`); this module only renders."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

import psycopg
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.responses import RedirectResponse

from askue.headend.vee import api as vapi
from askue.headend.vee import export as vexport
from askue.headend.vee.catalogue import KINDS
from askue.headend.web.deps import (
    WebUser,
    base_path,
    check_csrf,
    conn,
    html_errors,
    render,
    require_writer,
    web_user,
)
from askue.headend.web.queries import visible_orgs

router = APIRouter()
PAGE = 100


def _day(v: str | None, tz, name: str, lang: str) -> datetime | None:
    if not v:
        return None
    try:
        return datetime.combine(date.fromisoformat(v), time(0), tz)
    except ValueError:
        raise HTTPException(422, f"{name}: {'дата в виде ГГГГ-ММ-ДД' if lang == 'ru' else 'a date as YYYY-MM-DD'}") from None


def _filter(w: WebUser, org: str | None, kind: str | None, state: str | None, severity: str | None, meter: str | None,
            account: str | None, site: str | None, start: str | None, end: str | None,
            show_resolved: bool) -> vapi.EventFilter:
    # checked here for every caller (the export had no check: an unknown state was a 500)
    if state and state not in ("open", "acknowledged", "resolved"):
        raise HTTPException(422, f"state {state!r} is unknown")
    if severity and severity not in ("info", "warning", "critical"):
        raise HTTPException(422, f"severity {severity!r} is unknown")
    end_dt = _day(end, w.tz, "to", w.lang)
    return vapi._filter(organisation=org or None, kind=[kind] if kind else None, state=[state] if state else None,
                        start=_day(start, w.tz, "from", w.lang), end=end_dt + timedelta(days=1) if end_dt else None,
                        meter=meter or None, account=account or None, site=site or None, severity=severity or None,
                        show_resolved=show_resolved)


FILTER_KEYS = ("org", "kind", "state", "severity", "meter", "account", "site", "from", "to", "show_resolved")


@router.get("/events")
@html_errors
async def events(request: Request, org: str | None = None, kind: str | None = None, state: str | None = Query(None),
                 severity: str | None = None, meter: str | None = None, account: str | None = None,
                 site: str | None = None, start: str | None = Query(None, alias="from"),
                 end: str | None = Query(None, alias="to"), show_resolved: bool = False, before: int | None = None,
                 done: int | None = None, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    if state and state not in ("open", "acknowledged", "resolved"):
        raise HTTPException(422, f"state {state!r} is unknown")
    if severity and severity not in ("info", "warning", "critical"):
        raise HTTPException(422, f"severity {severity!r} is unknown")
    f = _filter(w, org, kind, state, severity, meter, account, site, start, end, show_resolved)
    where, params = vapi._where(f, w.principal)
    rows = await vapi._fetch_events(c, where, params, PAGE + 1, before)
    orgs = await visible_orgs(c, w.principal)
    now = datetime.now(w.tz)
    items = [vapi._event_out(r, w.lang, now) for r in rows[:PAGE]]
    args = {k: v for k, v in request.query_params.items() if k in FILTER_KEYS and v}
    more = urlencode(args | {"before": items[-1]["id"]}) if len(rows) > PAGE else None
    return render(request, "events.html", {
        "items": items, "kinds": sorted(KINDS.items(), key=lambda kv: kv[1][0 if w.lang == "ru" else 1]),
        "orgs": orgs, "f": {"org": org or "", "kind": kind or "", "state": state or "", "severity": severity or "", "meter": meter or "",
              "account": account or "", "site": site or "", "from": start or "", "to": end or "",
              "show_resolved": show_resolved},
        "qs": urlencode(args), "more": more, "done": done, "rows_text": vexport.rows(items, w.lang, w.tz)}, w)


@router.get("/events/export")
@html_errors
async def events_export(request: Request, format: str = Query("csv", pattern="^(csv|xlsx|pdf)$"),
                        org: str | None = None, kind: str | None = None, state: str | None = None, severity: str | None = None,
                        meter: str | None = None, account: str | None = None, site: str | None = None,
                        start: str | None = Query(None, alias="from"), end: str | None = Query(None, alias="to"),
                        show_resolved: bool = False, w: WebUser = Depends(web_user),
                        c: psycopg.AsyncConnection = Depends(conn)):
    f = _filter(w, org, kind, state, severity, meter, account, site, start, end, show_resolved)
    where, params = vapi._where(f, w.principal)
    rows = await vapi._fetch_events(c, where, params, vapi.EXPORT_MAX)
    stamp = datetime.now(w.tz).strftime("%Y%m%d_%H%M")
    if format == "csv":
        body, media = vexport.to_csv(rows, w.lang, w.tz), "text/csv; charset=utf-8"
    elif format == "xlsx":
        body = vexport.to_xlsx(rows, w.lang, w.tz)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        try:
            body = vexport.to_pdf(rows, w.lang, w.tz)
        except vexport.ExportError as e:
            raise HTTPException(503, str(e)) from None
        media = "application/pdf"
    from askue.headend.auth import audit

    await audit.record(c, w.user.login, request.client.host if request.client else None, "events_export",
                       "abnormal_event", None, new={"format": format, "rows": len(rows)})
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="events_{stamp}.{format}"'})


@router.post("/events/{event_id}/resolve")
@html_errors
async def resolve(request: Request, event_id: int, comment: str = Form(""), csrf: str = Form(""),
                  back: str = Form(""), w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    require_writer(w)
    comment = comment.strip()
    if not comment:
        raise HTTPException(422, "Укажите, что сделано (комментарий обязателен)" if w.lang == "ru"
                            else "Say what was done (a comment is required)")
    await vapi._transition(c, request, w.principal, event_id, "resolved", comment[:2000])
    qs = back if back and "\n" not in back and "//" not in back else ""
    sep = "&" if qs else ""
    return RedirectResponse(f"{base_path(request)}/events?{qs}{sep}done={event_id}", status_code=303)
