"""Overview (consumption totals), subscribers and consumption, account page, meter card."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from askue.headend.api.pagination import decode_cursor, page
from askue.headend.billing.snapshots import zone_name
from askue.headend.registry import meters as registry_meters
from askue.headend.storage.queries import consumption as cq
from askue.headend.storage.queries import meters as mq
from askue.headend.storage.queries import registry as rq
from askue.headend.units import RESOURCE_UNITS
from askue.headend.web import queries as wq
from askue.headend.web.charts import Bar, bar_chart
from askue.headend.web.deps import WebUser, conn, html_errors, render, web_user
from askue.headend.web.exports import overview_csv, overview_pdf
from askue.headend.web.i18n import t

router = APIRouter()
UNITS = {r: u[0] for r, u in RESOURCE_UNITS.items()}  # the canonical unit of each resource
RESOURCE_COLORS = {"electricity": "#1f6fb2", "cold_water": "#1e88e5", "hot_water": "#e53935", "heat": "#8e24aa",
                   "gas": "#6d4c41"}


def _today(w: WebUser) -> date:
    return datetime.now(w.tz).date()


async def _overview_data(w: WebUser, c, period: str | None, value: str | None, org: str | None) -> dict:
    try:
        per = wq.parse_period(period, value, _today(w))
    except ValueError as e:
        raise HTTPException(422, f"{t('period', w.lang)}: {e}") from None
    orgs = await wq.visible_orgs(c, w.principal)
    codes = [o["code"] for o in orgs]
    if org:
        if org not in codes:
            raise HTTPException(404, f"organisation {org!r} not found")
        codes = [org]
    rows = await wq.org_consumption(c, w.principal, codes, "day" if per.kind == "date" else
                                    ("month" if per.kind == "month" else "year"), per.start, per.end)
    chart_rows = await wq.org_consumption(c, w.principal, codes, per.chart_granularity, per.chart_start, per.end)
    return {"per": per, "orgs": orgs, "org": org, "codes": codes, "totals": wq.totals(rows), "chart_rows": chart_rows}


def _bucket_labels(per: wq.Period) -> list[date]:
    out, d = [], per.chart_start
    while d < per.end:
        out.append(d)
        d = d + timedelta(days=1) if per.chart_granularity == "day" else \
            date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return out


@router.get("/", name="web_overview")
@html_errors
async def overview(request: Request, period: str | None = None, value: str | None = None, org: str | None = None,
                   w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    data = await _overview_data(w, c, period, value, org or None)
    per = data["per"]
    charts = []
    for res in sorted({r["resource"] for r in data["chart_rows"]}):
        s = wq.series(data["chart_rows"], res)
        bars = [Bar(b.strftime("%d.%m") if per.chart_granularity == "day" else b.strftime("%m.%Y"),
                    round(s.get(b, 0.0), 3)) for b in _bucket_labels(per)]
        charts.append({"resource": res, "svg": bar_chart(bars, unit=UNITS.get(res, ""), css_id=f"chart-{res}",
                                                         color=RESOURCE_COLORS.get(res, "#1f6fb2"))})
    return render(request, "overview.html", data | {"charts": charts, "units": UNITS}, w)


@router.get("/overview/export")
@html_errors
async def overview_export(request: Request, format: str = Query("csv", pattern="^(csv|pdf)$"),
                          period: str | None = None, value: str | None = None, org: str | None = None,
                          w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    data = await _overview_data(w, c, period, value, org or None)
    name = f"consumption_{data['per'].start.isoformat()}"
    if format == "csv":
        body, media = overview_csv(data["totals"], data["per"], w.lang), "text/csv; charset=utf-8"
    else:
        body, media = overview_pdf(data["totals"], data["per"], data["codes"], w.lang, w.tz), "application/pdf"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'})


@router.get("/accounts")
@html_errors
async def accounts(request: Request, q: str | None = None, cursor: str | None = None, month: str | None = None,
                   w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    try:
        per = wq.parse_period("month", month, _today(w))
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    after = decode_cursor(cursor, 1)
    listed = page(await rq.list_registry(c, "accounts", w.principal.scope, q or None, after[0] if after else None, 51),
                  50, lambda r: [r["code"]])
    orgs = sorted({a["org_code"] for a in listed["items"] if a["org_code"]})
    cons = await wq.account_consumption(c, w.principal, orgs, per.start, per.end) if orgs else {}
    cols = sorted({k for a in cons.values() for k in a}, key=lambda k: (k[0], k[1]))
    return render(request, "accounts.html", {"page": listed, "q": q or "", "per": per, "cons": cons, "cols": cols,
                                             "units": UNITS}, w)


@router.get("/accounts/{code}")
@html_errors
async def account(request: Request, code: str, w: WebUser = Depends(web_user),
                  c: psycopg.AsyncConnection = Depends(conn)):
    acc = await wq.get_account(c, w.principal, code)
    if acc is None:
        raise HTTPException(404, f"account {code!r} not found")
    meters = await mq.list_meters(c, mq.MeterFilter(account=code), w.principal.scope, None, 1000)
    for m in meters:
        m["latest"] = await mq.latest_registers(c, m["id"])
    today = _today(w)
    start = date(today.year - 1, today.month, 1)
    rows = await cq.consumption(c, cq.ConsumptionQuery(level="account", key=code, granularity="month", start=start,
                                                       group="meter"), w.principal.scope)
    return render(request, "account.html", {"acc": acc, "meters": meters, "rows": rows, "units": UNITS}, w)


@router.get("/meters/{code}")
@html_errors
async def meter_card(request: Request, code: str, gran: str = Query("day", pattern="^(day|month)$"),
                     w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    m = await mq.get_meter(c, code, w.principal.scope)
    if m is None:
        raise HTTPException(404, f"meter {code!r} not found")
    latest = await mq.latest_registers(c, m["id"])
    today = _today(w)
    if gran == "day":
        start = today - timedelta(days=30)
        buckets = [start + timedelta(days=i) for i in range(31)]
    else:
        start = date(today.year - 1, today.month, 1)
        buckets, d = [], start
        while d <= today:
            buckets.append(d)
            d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    rows = await cq.consumption(c, cq.ConsumptionQuery(level="meter", key=code, granularity=gran, start=start,
                                                       end=today + timedelta(days=1)),
                                w.principal.scope)
    zones = sorted({r["zone"] for r in rows})
    main_zone = 0 if 0 in zones or not zones else zones[0]
    by = {r["bucket"]: r["value"] for r in rows if r["zone"] == main_zone}
    bars = [Bar(b.strftime("%d.%m") if gran == "day" else b.strftime("%m.%Y"), round(by.get(b, 0.0) or 0.0, 3))
            for b in buckets]
    chart = bar_chart(bars, unit=UNITS.get(m["resource"], ""), css_id="meter-chart",
                      color=RESOURCE_COLORS.get(m["resource"], "#1f6fb2"))
    readings = await wq.latest_readings(c, m["id"])
    bucket = wq.contact_bucket(m["last_contact"], datetime.now(w.tz))
    history = await registry_meters.history(c, w.principal, code)  # parameters, bindings, acts (registry)
    return render(request, "meter.html", {"m": m, "latest": latest, "chart": chart, "gran": gran,
                                          "readings": readings, "rows": rows, "units": UNITS, "bucket": bucket,
                                          "bucket_color": wq.BUCKET_COLOR[bucket], "h": history,
                                          "zone_of": zone_name}, w)
