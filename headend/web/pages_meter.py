"""The meter card: facts, current values per channel, a period (month, year, day, range
with ← / →) with consumption per day or month and tariff (chart and table), the hourly
load profile for a day or a month (chart and table), the readings of the period with
their source and quality, the meter's history, and the card as PDF or Excel."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import psycopg
from fastapi import APIRouter, Depends, Query, Request

from askue.headend import names, units
from askue.headend.billing.snapshots import MeterInfo, zone_name
from askue.headend.consumption import report as cr
from askue.headend.consumption.periods import Period
from askue.headend.contact import BUCKET_COLOR, contact_bucket
from askue.headend.errors import NotFound
from askue.headend.registry import meters as registry_meters
from askue.headend.storage.queries import meter_history as mh
from askue.headend.storage.queries import meters as mq
from askue.headend.storage.queries import values as vq
from askue.headend.storage.queries.meter_table import attach_latest
from askue.headend.web import documents as wdoc
from askue.headend.web import pages_commands
from askue.headend.web.charts import Series, bar_chart, line_chart
from askue.headend.web.deps import WebUser, conn, html_errors, render, web_user
from askue.headend.web.i18n import t
from askue.headend.web.pages_main import RESOURCE_COLORS, download, today_of
from askue.headend.web.period_nav import period_nav

router = APIRouter()
READINGS_SHOWN = 500
PROFILE_MAX_DAYS = 31
ZONE_COLORS = ("#1f6fb2", "#43a047", "#7e57c2", "#fb8c00", "#00897b")


@dataclass
class Profile:
    """Energy per local hour × the multiplier in force that day, per profile channel."""

    channels: list[str] = field(default_factory=list)
    hours: list[datetime] = field(default_factory=list)  # every hour of the span, local
    values: dict[str, dict[datetime, float]] = field(default_factory=dict)
    days: list[date] = field(default_factory=list)
    reason: str = ""  # why there is none

    def main(self) -> str | None:
        return self.channels[0] if self.channels else None

    def day_matrix(self) -> list[tuple[date, list[float | None], float | None]]:
        """Rows of the month table: a day, its 24 hours of the main channel, their sum."""
        ch = self.main()
        out = []
        for d in self.days:
            vals = [self.values.get(ch, {}).get(h) for h in self.hours if h.date() == d]
            known = [v for v in vals if v is not None]
            out.append((d, vals, sum(known) if known else None))
        return out


def _local(d: date, tz) -> datetime:
    return datetime.combine(d, time(0), tz)


async def _profile(c, m: dict, per: Period | None, tz, lang: str) -> Profile:
    p = Profile()
    if per is None:
        return p
    if per.kind == "year" or per.days > PROFILE_MAX_DAYS:
        p.reason = t("profile_pick_shorter", lang)
        return p
    start, end = _local(per.start, tz), _local(per.end, tz)
    rows = await vq.hourly_profile(c, m["id"], start, end)
    # each hour × the multiplier in force on its day (dated registry parameters)
    rated = MeterInfo(m["id"], m["code"], float(m["multiplier"] or 1),
                      versions=tuple((await registry_meters.params_on(c, [m["id"]])).get(m["id"], ())))
    for r in rows:
        hour = r["hour"].astimezone(tz)
        p.values.setdefault(r["obis"], {})[hour] = (r["value"] or 0.0) * rated.on(hour.date())[0]
    p.channels = sorted(p.values, key=lambda o: (o.split(".")[2] != "1", o))
    h = start.astimezone(UTC)
    while h < end:  # counted in UTC, so a day with a clock change has its 23 or 25 hours
        p.hours.append(h.astimezone(tz))
        h += timedelta(hours=1)
    p.days = per.buckets() if per.granularity == "day" else []
    if not p.channels:
        p.reason = t("profile_none", lang)
    return p


async def _card(request: Request, code: str, w: WebUser, c) -> dict:
    m = await mq.get_meter(c, code, w.principal.scope)
    if m is None:
        raise NotFound(f"meter {code!r} not found", f"прибор учёта {code} не найден")
    today = today_of(w)
    # the last 31 days by default: a card opened on the 1st still shows a month of use
    nav = period_nav(request, today, w.lang, default=Period("range", today - timedelta(days=30),
                                                            today + timedelta(days=1)))
    per = nav.per if not nav.errors else None
    await attach_latest(c, [m])
    current = await mq.latest_registers(c, m["id"])
    current.sort(key=lambda r: (r["obis"] not in {x["obis"] for x in m["latest"]}, r["obis"]))
    rows = await cr.meter_rows(c, w.principal, code, per) if per else []
    zones = sorted({r["zone"] for r in rows}) or ([0] if per else [])
    by = {(r["bucket"], r["zone"]): r["value"] for r in rows}
    table = [(b, [by.get((b, z)) for z in zones]) for b in per.buckets()] if per else []
    totals = [sum(v for _, vs in table if (v := vs[i]) is not None) for i in range(len(zones))]
    profile = await _profile(c, m, per, w.tz, w.lang)
    readings, n_readings = [], 0
    if per:
        start, end = _local(per.start, w.tz), _local(per.end, w.tz)
        readings = await vq.meter_values(c, m["id"], ["register"], start, end, None, None, READINGS_SHOWN)
        n_readings = await vq.count_values(c, m["id"], "register", start, end)
    history = await mh.meter_history(c, m)
    registry = await registry_meters.history(c, w.principal, code)  # parameters, bindings, acts
    now = datetime.now(w.tz)
    bucket = contact_bucket(m["last_contact"], now)
    return {"m": m, "nav": nav, "per": per, "current": current, "zones": zones, "table": table, "totals": totals,
            "profile": profile, "readings": readings, "n_readings": n_readings, "history": history,
            "history_rows": [(e, *mh.describe(e, m["resource"], w.lang, w.tz)) for e in history],
            "bucket": bucket, "bucket_color": BUCKET_COLOR[bucket], "now": now, "h": registry,
            "zone_of": zone_name}


def _charts(data: dict, lang: str) -> dict[str, str]:
    m, per = data["m"], data["per"]
    out = {}
    if per and len(data["table"]) > 1:  # one bucket (a day) reads better as the table alone
        labels = [f"{b:%d.%m}" if per.granularity == "day" else f"{b:%m.%Y}" for b, _ in data["table"]]
        zones = data["zones"]
        shown = [0] if 0 in zones and len(zones) > 1 else zones  # the total, or the zones when there is no total
        series = [Series(names.zone(z, lang), [vs[zones.index(z)] for _, vs in data["table"]],
                         RESOURCE_COLORS.get(m["resource"], "#1f6fb2") if z == 0 else ZONE_COLORS[z % 5])
                  for z in shown]
        out["consumption"] = bar_chart(labels, series, unit=units.unit(m["resource"], None, lang),
                                       css_id="meter-chart", lang=lang, width=1200, height=260)
    p: Profile = data["profile"]
    if p.channels:
        ch = p.main()
        vals = [p.values[ch].get(h) for h in p.hours]
        unit = units.unit(m["resource"], ch, lang)
        if len(p.hours) <= 25:
            out["profile"] = bar_chart([f"{h:%H}" for h in p.hours], [Series(names.channel(ch, lang), vals)],
                                       unit=unit, css_id="profile-chart", lang=lang, width=1200, height=260)
        else:
            out["profile"] = line_chart([f"{h:%d.%m}" for h in p.hours], [Series(names.channel(ch, lang), vals)],
                                        unit=unit, css_id="profile-chart", lang=lang, label_every=24 * 3,
                                        width=1200, height=260)
    return out


@router.get("/meters/{code}")
@html_errors
async def meter_card(request: Request, code: str, w: WebUser = Depends(web_user),
                     c: psycopg.AsyncConnection = Depends(conn)):
    data = await _card(request, code, w, c)
    return render(request, "meter.html", data | {"charts": _charts(data, w.lang), "export_qs": request.url.query,
                                                 **await pages_commands.card_context(request, c, w, data["m"])}, w,
                  status_code=422 if data["nav"].errors else 200)


@router.get("/meters/{code}/export")
@html_errors
async def meter_card_export(request: Request, code: str, format: str = Query("pdf", pattern="^(xlsx|pdf|csv)$"),
                            w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    data = await _card(request, code, w, c)
    if data["per"] is None:
        return render(request, "meter.html", data | {"charts": {}, "export_qs": ""}, w, status_code=422)
    return download(wdoc.meter_card_document(data, w.lang, w.tz), format, w.lang)
