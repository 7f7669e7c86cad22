"""Нештатные ситуации: filters, show resolved, resolve with a comment, CSV/XLSX/PDF
export and print. Listing, scoping, transitions, sentences and documents are the
events service's (`askue.headend.events`); this module only reads the form and renders."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

import psycopg
from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from askue.headend.auth import audit
from askue.headend.errors import Invalid
from askue.headend.events import api as events_api
from askue.headend.events import service
from askue.headend.events.catalogue import KINDS
from askue.headend.events.describe import zone_label
from askue.headend.storage.queries import accounts as aq
from askue.headend.web.deps import (
    WebUser,
    base_path,
    check_csrf,
    conn,
    html_errors,
    primary_conn,
    render,
    web_user,
)
from askue.headend.web.queries import visible_orgs

router = APIRouter()
PAGE = 100
FILTER_KEYS = ("org", "kind", "state", "severity", "meter", "account", "site", "from", "to", "show_resolved")


def _day(v: str | None, tz, name: str) -> datetime | None:
    if not v:
        return None
    try:
        return datetime.combine(date.fromisoformat(v), time(0), tz)
    except ValueError:
        raise Invalid(name, f"{name}: a date as YYYY-MM-DD", f"{name}: дата в виде ГГГГ-ММ-ДД") from None


def _filter(w: WebUser, org: str | None, kind: str | None, state: str | None, severity: str | None,
            meter: str | None, account: str | None, site: str | None, start: str | None, end: str | None,
            show_resolved: bool) -> service.EventFilter:
    end_dt = _day(end, w.tz, "to")  # the last day shown is included
    return service.EventFilter(organisation=org or None, kind=(kind,) if kind else (), state=(state,) if state else (),
                               start=_day(start, w.tz, "from"), end=end_dt + timedelta(days=1) if end_dt else None,
                               meter=meter or None, account=account or None, site=site or None,
                               severity=severity or None, show_resolved=show_resolved)


@router.get("/events")
@html_errors
async def events(request: Request, org: str | None = None, kind: str | None = None, state: str | None = Query(None),
                 severity: str | None = None, meter: str | None = None, account: str | None = None,
                 site: str | None = None, start: str | None = Query(None, alias="from"),
                 end: str | None = Query(None, alias="to"), show_resolved: bool = False, before: int | None = None,
                 done: int | None = None, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    f = _filter(w, org, kind, state, severity, meter, account, site, start, end, show_resolved)
    rows = await service.list_events(c, w.principal, f, limit=PAGE + 1, before_id=before)
    now = datetime.now(w.tz)
    items = [service.view(r, w.lang, w.tz, now) for r in rows[:PAGE]]
    args = {k: v for k, v in request.query_params.items() if k in FILTER_KEYS and v}
    more = urlencode(args | {"before": items[-1]["id"]}) if len(rows) > PAGE else None
    return render(request, "events.html", {
        "items": items, "kinds": sorted(KINDS.items(), key=lambda kv: kv[1][0 if w.lang == "ru" else 1]),
        "orgs": await visible_orgs(c, w.principal),
        "f": {"org": org or "", "kind": kind or "", "state": state or "", "severity": severity or "",
              "meter": meter or "", "account": account or "", "site": site or "", "from": start or "",
              "to": end or "", "show_resolved": show_resolved},
        "qs": urlencode(args), "more": more, "done": done}, w)


@router.get("/events/export")
@html_errors
async def events_export(request: Request, format: str = Query("csv", pattern="^(csv|xlsx|pdf)$"),
                        org: str | None = None, kind: str | None = None, state: str | None = None,
                        severity: str | None = None, meter: str | None = None, account: str | None = None,
                        site: str | None = None, start: str | None = Query(None, alias="from"),
                        end: str | None = Query(None, alias="to"), show_resolved: bool = False,
                        w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn),
                        pc: psycopg.AsyncConnection = Depends(primary_conn)):
    f = _filter(w, org, kind, state, severity, meter, account, site, start, end, show_resolved)
    rows = await service.list_events(c, w.principal, f, limit=service.EXPORT_MAX)
    now = datetime.now(w.tz)
    body, media = events_api.document(format, [service.view(r, w.lang, w.tz, now) for r in rows], w.lang, w.tz)
    await audit.record(pc, w.principal, "events_export", "abnormal_event", None,  # the export reads the replica
                       new={"format": format, "rows": len(rows)})
    return Response(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="events_{now.strftime("%Y%m%d_%H%M")}.{format}"'})


@router.post("/events/{event_id}/resolve")
@html_errors
async def resolve(request: Request, event_id: int, comment: str = Form(""), csrf: str = Form(""),
                  back: str = Form(""), w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    await service.transition(c, w.principal, event_id, "resolved", comment)
    qs = back if back and "\n" not in back and "//" not in back else ""
    sep = "&" if qs else ""
    return RedirectResponse(f"{base_path(request)}/events?{qs}{sep}done={event_id}", status_code=303)



@router.get("/events/{event_id}")
@html_errors
async def event_page(request: Request, event_id: int, w: WebUser = Depends(web_user),
                     c: psycopg.AsyncConnection = Depends(conn)):
    """One event (the link in alert e-mails): what, where, its sentence, its state."""
    row = await service.get_event(c, w.principal, event_id)
    e = service.view(row, w.lang, w.tz, datetime.now(w.tz))
    org = next((o["name"] for o in await visible_orgs(c, w.principal) if o["code"] == e["organisation"]), None)
    acc = await aq.get_account(c, w.principal.scope, e["account"]) if e["account"] else None
    return render(request, "event.html", {"e": e, "org_name": org, "acc": acc,
                                          "zone": zone_label(w.tz, lang=w.lang, word=False)}, w)
