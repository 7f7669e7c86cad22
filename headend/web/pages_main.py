"""Consumption pages: the overview («Расход ресурсов») and «Абоненты и расход» with the
account card. Each reads a period (month, year, day or range, ← / →), shows charts with
per-day or per-month tables under them (ИПУ and ОДПУ apart, the house balance), and
downloads as PDF, Excel or CSV. Reads are the consumption service's and the storage
read models'; this module only reads the query string and renders."""
from __future__ import annotations

from datetime import date, datetime

import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response

from askue.headend import documents
from askue.headend.consumption import report as cr
from askue.headend.errors import NotFound
from askue.headend.storage.queries import accounts as aq
from askue.headend.storage.queries import consumption as cq
from askue.headend.storage.queries import registry as rq
from askue.headend.storage.queries.meter_table import PAGE_SIZES, attach_latest
from askue.headend.web import documents as wdoc
from askue.headend.web.charts import Series, bar_chart
from askue.headend.web.deps import WebUser, conn, html_errors, render, web_user
from askue.headend.web.i18n import t
from askue.headend.web.period_nav import PeriodNav, period_nav

router = APIRouter()
RESOURCE_COLORS = {"electricity": "#1f6fb2", "cold_water": "#1e88e5", "hot_water": "#e53935", "heat": "#8e24aa",
                   "gas": "#6d4c41", "unknown": "#607d8b"}
BALANCE_COLOR = "#f9a825"
Format = Query("pdf", pattern="^(csv|xlsx|pdf)$")


def today_of(w: WebUser) -> date:
    return datetime.now(w.tz).date()


def page_size(raw: str | None, errors: dict[str, str], lang: str) -> int | None:
    """25/50/100 or all (None); anything else is a field error and the default."""
    if raw in (None, ""):
        return 25
    if raw == "all":
        return None
    if raw.isdigit() and int(raw) in PAGE_SIZES:
        return int(raw)
    errors["size"] = t("bad_size", lang)
    return 25


def page_number(raw: str | None, errors: dict[str, str], lang: str) -> int:
    if raw in (None, ""):
        return 1
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    errors["page"] = t("bad_page", lang)
    return 1


async def _scope(c, w: WebUser, org: str | None, house: str | None):
    """The organisations and houses a page covers; another organisation's (or an unknown)
    one answers 404, as if it did not exist."""
    orgs = await rq.visible_organisations(c, w.principal.scope)
    codes = [o["code"] for o in orgs]
    if org:
        if org not in codes:
            raise NotFound(f"organisation {org!r} not found", f"организация {org} не найдена")
        codes = [org]
    houses = await rq.houses(c, w.principal.scope, org)
    if house and house not in {h["code"] for h in houses}:
        raise NotFound(f"house {house!r} not found", f"дом {house} не найден")
    return orgs, codes, houses


def charts_of(report: cr.Report, lang: str) -> dict[str, str]:
    """A grouped bar chart per resource: ИПУ (total register) and, when there are any, ОДПУ."""
    per = report.period
    labels = [b.strftime("%m.%Y") if per.granularity == "month" else b.strftime("%d.%m") for b in per.buckets()]
    out: dict[str, str] = {}
    if len(labels) < 2:  # one bucket (a day) reads better as the table alone
        return out
    for rr in report.resources:
        series = [Series(t("individual_meters", lang), [v for _, v in rr.series("individual", 0)],
                         RESOURCE_COLORS.get(rr.resource, "#1f6fb2"))]
        if rr.balance_zones:
            series.append(Series(t("balance_meters", lang), [v for _, v in rr.series("balance", 0)], BALANCE_COLOR))
        out[rr.resource] = bar_chart(labels, series, unit=wdoc.unit_of(rr.resource, lang),
                                     css_id=f"chart-{rr.resource}", lang=lang, width=1200, height=260)
    return out


async def _overview(request: Request, w: WebUser, c) -> dict:
    nav = period_nav(request, today_of(w), w.lang)
    org, house = request.query_params.get("org") or None, request.query_params.get("house") or None
    orgs, codes, houses = await _scope(c, w, org, house)
    report = None
    if nav.per and not nav.errors:
        report = await cr.consumption_report(c, w.principal, nav.per, org_codes=codes, house=house)
    return {"nav": nav, "orgs": orgs, "org": org or "", "house": house or "", "houses": houses, "codes": codes,
            "report": report}


@router.get("/", name="web_overview")
@html_errors
async def overview(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    data = await _overview(request, w, c)
    charts = charts_of(data["report"], w.lang) if data["report"] else {}
    return render(request, "overview.html", data | {"charts": charts, "export_qs": request.url.query}, w,
                  status_code=422 if data["nav"].errors else 200)


@router.get("/overview/export")
@html_errors
async def overview_export(request: Request, format: str = Format, w: WebUser = Depends(web_user),
                          c: psycopg.AsyncConnection = Depends(conn)):
    data = await _overview(request, w, c)
    nav: PeriodNav = data["nav"]
    if data["report"] is None:
        return render(request, "overview.html", data | {"charts": {}, "export_qs": ""}, w, status_code=422)
    level = ("house", data["house"]) if data["house"] else None
    statement = []
    for lv, key in [level] if level else [("organisation", code) for code in data["codes"]]:
        statement += await cq.readings_statement(
            c, cq.ConsumptionQuery(level=lv, key=key, start=nav.per.start, end=nav.per.end), w.principal.scope)
    names = [o["name"] for o in data["orgs"] if o["code"] in data["codes"]]
    house = next((h for h in data["houses"] if h["code"] == data["house"]), None)
    doc = wdoc.consumption_document(data["report"], statement, w.lang, w.tz, orgs=names, house=house)
    return download(doc, format, w.lang)


def download(doc: documents.Document, fmt: str, lang: str) -> Response:
    body, media = documents.render(doc, fmt, lang)
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{doc.name}.{fmt}"'})


async def _accounts(request: Request, w: WebUser, c) -> dict:
    nav = period_nav(request, today_of(w), w.lang)
    qp = request.query_params
    q = qp.get("q", "")
    size = page_size(qp.get("size"), nav.errors, w.lang)
    number = page_number(qp.get("page"), nav.errors, w.lang)
    orgs, codes, _ = await _scope(c, w, None, None)
    rows, total = await aq.list_accounts(c, w.principal.scope, q, size, (number - 1) * (size or 0))
    meters = await aq.meters_of(c, w.principal.scope, [a["id"] for a in rows])
    await attach_latest(c, meters)
    for a in rows:
        a["meters"] = [m for m in meters if m["account_id"] == a["id"]]
    cons, report, cols = {}, None, []
    if nav.per and not nav.errors:
        cons = await cr.account_totals(c, w.principal, nav.per, codes)
        report = await cr.consumption_report(c, w.principal, nav.per, org_codes=codes)
        cols = sorted({res for a in cons.values() for res, _ in a},
                      key=lambda r: cr.RESOURCE_ORDER.index(r) if r in cr.RESOURCE_ORDER else 99)
    for a in rows:
        by: dict[str, list[tuple[int, float]]] = {}
        for (res, z), v in sorted(cons.get(a["code"], {}).items()):
            by.setdefault(res, []).append((z, v))
        a["by_resource"] = by
    pages = max(1, -(-total // size)) if size else 1
    return {"nav": nav, "q": q, "rows": rows, "total": total, "size": size, "number": number, "pages": pages,
            "cons": cons, "cols": cols, "report": report, "orgs": orgs, "offset": (number - 1) * (size or 0)}


@router.get("/accounts")
@html_errors
async def accounts(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    data = await _accounts(request, w, c)
    keep = {k: v for k, v in request.query_params.items() if k not in ("page", "lang")}
    return render(request, "accounts.html", data | {"keep": keep, "export_qs": request.url.query,
                                                    "field_errors": data["nav"].errors}, w,
                  status_code=422 if data["nav"].errors else 200)


@router.get("/accounts/export")
@html_errors
async def accounts_export(request: Request, format: str = Format, w: WebUser = Depends(web_user),
                          c: psycopg.AsyncConnection = Depends(conn)):
    data = await _accounts(request, w, c)
    if data["nav"].per is None or data["nav"].errors:
        return render(request, "accounts.html", data | {"keep": {}, "export_qs": "", "field_errors": data["nav"].errors},
                      w, status_code=422)
    doc = wdoc.accounts_document(data["rows"], data["cons"], data["cols"], data["report"], data["nav"].per,
                                 w.lang, w.tz)
    return download(doc, format, w.lang)


@router.get("/accounts/{code}")
@html_errors
async def account(request: Request, code: str, w: WebUser = Depends(web_user),
                  c: psycopg.AsyncConnection = Depends(conn)):
    acc = await aq.get_account(c, w.principal.scope, code)
    if acc is None:
        raise NotFound(f"account {code!r} not found", f"лицевой счёт {code} не найден")
    nav = period_nav(request, today_of(w), w.lang)
    meters = await aq.meters_of(c, w.principal.scope, [acc["id"]])
    await attach_latest(c, meters)
    rows = []
    if nav.per and not nav.errors:
        rows = await cq.consumption(c, cq.ConsumptionQuery(
            level="account", key=code, granularity="month" if nav.per.granularity == "month" else "day",
            start=nav.per.start, end=nav.per.end, group="meter"), w.principal.scope)
    sums: dict[tuple[str, str, int], float] = {}
    for r in rows:
        k = (r["group_key"], r["resource"], r["zone"])
        sums[k] = sums.get(k, 0.0) + (r["value"] or 0.0)
    serials = {m["code"]: m["serial"] or m["code"] for m in meters}
    totals = [{"meter": k[0], "serial": serials.get(k[0], k[0]), "resource": k[1], "zone": k[2], "value": v}
              for k, v in sorted(sums.items())]
    return render(request, "account.html", {"acc": acc, "meters": meters, "totals": totals, "nav": nav}, w,
                  status_code=422 if nav.errors else 200)
