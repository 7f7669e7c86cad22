"""«Абоненты и приборы учета»: the meter table with search, filters (house, resource,
status, contact, open events), sorting by any column, 25/50/100/all rows, Excel, CSV,
PDF and print. The read model is `storage/queries/meter_table`; this module reads the
query string (a bad value gets a message next to its field and is not applied) and renders."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import psycopg
from fastapi import APIRouter, Depends, Query, Request

from askue.headend import names
from askue.headend.contact import BUCKET_COLOR, contact_bucket
from askue.headend.errors import Invalid, NotFound
from askue.headend.events.catalogue import KINDS
from askue.headend.storage.queries import meter_table as mt
from askue.headend.storage.queries import registry as rq
from askue.headend.web import documents as wdoc
from askue.headend.web.deps import WebUser, conn, html_errors, render, web_user
from askue.headend.web.i18n import t
from askue.headend.web.pages_main import download, page_number, page_size

router = APIRouter()
FILTERS = ("q", "house", "resource", "status", "contact", "event", "sort", "dir", "size")
DEFAULTS = mt.MeterTableQuery()


def _query(request: Request, w: WebUser, errors: dict[str, str], *, everything: bool = False) -> mt.MeterTableQuery:
    qp = request.query_params
    size = None if everything else page_size(qp.get("size"), errors, w.lang)
    number = 1 if everything else page_number(qp.get("page"), errors, w.lang)
    fields = {"q": qp.get("q") or None, "house": qp.get("house") or None, "resource": qp.get("resource") or None,
              "status": qp.get("status") or None, "contact": qp.get("contact") or None,
              "event": qp.get("event") or None, "sort": qp.get("sort") or DEFAULTS.sort,
              "desc": qp.get("dir") == "desc", "limit": size, "offset": (number - 1) * (size or 0)}
    for _ in range(len(fields)):
        try:
            return mt.MeterTableQuery(**fields)
        except Invalid as e:  # show it next to the field and leave that filter out
            errors[e.field] = e.text(w.lang)
            fields[e.field] = getattr(DEFAULTS, e.field)
    return replace(DEFAULTS, limit=size)


def _filters_line(f: mt.MeterTableQuery, houses: list[dict], lang: str) -> str:
    parts = []
    if f.q:
        parts.append(f"{t('search', lang)}: «{f.q}»")
    if f.house:
        h = next((h for h in houses if h["code"] == f.house), None)
        parts.append(f"{t('house', lang)}: {(h and (h['address'] or h['code'])) or f.house}")
    if f.resource:
        parts.append(f"{t('resource', lang)}: {names.resource(f.resource, lang)}")
    if f.status:
        parts.append(f"{t('status', lang)}: {names.meter_status(f.status, lang)}")
    if f.contact:
        parts.append(f"{t('contact', lang)}: {t('contact_' + f.contact, lang)}")
    if f.event:
        parts.append(f"{t('events', lang)}: " + (t("any_event", lang) if f.event == "any" else
                                                   names.pick(KINDS[f.event][:2], lang)))
    return "; ".join(parts)


async def _data(request: Request, w: WebUser, c, *, everything: bool = False) -> dict:
    errors: dict[str, str] = {}
    f = _query(request, w, errors, everything=everything)
    houses = await rq.houses(c, w.principal.scope)
    if f.house and f.house not in {h["code"] for h in houses}:  # another organisation's, as if it did not exist
        raise NotFound(f"house {f.house!r} not found", f"дом {f.house} не найден")
    now = datetime.now(w.tz)
    table = await mt.meter_table(c, w.principal.scope, f, now)
    for m in table.rows:
        m["bucket"] = contact_bucket(m["last_contact"], now)
        m["color"] = BUCKET_COLOR[m["bucket"]]
    size = f.limit
    number = f.offset // size + 1 if size else 1
    return {"table": table, "f": f, "houses": houses, "errors": errors, "now": now, "size": size, "number": number,
            "pages": max(1, -(-table.total // size)) if size else 1, "total": table.total,
            "filters_line": _filters_line(f, houses, w.lang)}


def _sort_links(request: Request, f: mt.MeterTableQuery) -> dict[str, str]:
    from urllib.parse import urlencode

    base = {k: v for k, v in request.query_params.items() if k in FILTERS and k not in ("sort", "dir") and v}
    out = {}
    for key in mt.SORTS:
        desc = f.sort == key and not f.desc
        out[key] = "?" + urlencode(base | {"sort": key, **({"dir": "desc"} if desc else {})})
    return out


@router.get("/meters")
@html_errors
async def meters(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    data = await _data(request, w, c)
    keep = {k: v for k, v in request.query_params.items() if k in FILTERS and v}
    return render(request, "meters.html", data | {
        "keep": keep, "sorts": _sort_links(request, data["f"]), "field_errors": data["errors"],
        "export_qs": request.url.query,
        "kinds": sorted(((k, names.pick(v[:2], w.lang)) for k, v in KINDS.items()), key=lambda kv: kv[1]),
        "resources": mt.RESOURCES[:-1], "statuses": mt.STATUSES, "contacts": mt.CONTACTS}, w,
        status_code=422 if data["errors"] else 200)


@router.get("/meter-table/export")
@html_errors
async def meters_export(request: Request, format: str = Query("xlsx", pattern="^(csv|xlsx|pdf)$"),
                        w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    """Every row the filters select (not just the page shown), in the page's order."""
    data = await _data(request, w, c, everything=True)
    doc = wdoc.meter_table_document(data["table"].rows, w.lang, w.tz, data["now"], data["filters_line"])
    return download(doc, format, w.lang)
