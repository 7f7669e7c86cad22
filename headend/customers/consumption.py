"""Consumption of one metering point by day (a month) or by month (a year), as the
customer cabinet shows it: «Расход» from the integral readings, «Расход интервальный»
from the hourly profile, «Дельта» between them (zero when both agree), each with the
point's «Расчётный коэф.» (CT·VT multiplier) applied, and the supplier's losses
(«Потери 5 %») added to the integral figure."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import psycopg

from askue.headend.auth.permissions import Principal
from askue.headend.consumption.periods import next_month
from askue.headend.customers import points
from askue.headend.storage import meta
from askue.headend.storage.queries import consumption as cq


@dataclass
class Figure:
    bucket: date
    integral: float | None  # «Расход» × multiplier
    interval: float | None  # «Расход интервальный» × multiplier
    losses: float | None  # integral × losses %
    with_losses: float | None

    @property
    def delta(self) -> float | None:
        if self.integral is None or self.interval is None:
            return None
        return round(self.integral - self.interval, 6)


@dataclass
class PointConsumption:
    point: points.Point
    granularity: str  # day | month
    start: date
    end: date  # exclusive
    figures: list[Figure]

    def total(self, attr: str) -> float | None:
        vals = [getattr(f, attr) for f in self.figures if getattr(f, attr) is not None]
        return round(sum(vals), 6) if vals else None


def buckets(granularity: str, start: date, end: date) -> list[date]:
    out, d = [], start
    while d < end:
        out.append(d)
        d = d + timedelta(days=1) if granularity == "day" else next_month(d)
    return out


async def of_point(conn: psycopg.AsyncConnection, principal: Principal, code: str, granularity: str,
                   start: date, end: date, lang: str = "ru") -> PointConsumption:
    return await of_listed_point(conn, principal, await points.point(conn, principal, code, lang), granularity,
                                 start, end)


async def of_listed_point(conn: psycopg.AsyncConnection, principal: Principal, p: points.Point, granularity: str,
                          start: date, end: date) -> PointConsumption:
    """`of_point` for a point of `points.points(principal)` already at hand (a page of many
    points does not look each up again)."""
    if granularity != "day":
        start = start.replace(day=1)
    rows = await cq.consumption(conn, cq.ConsumptionQuery(level="meter", key=p.code, granularity=granularity,
                                                          start=start, end=end, group="total"), principal.scope)
    total: dict[date, float] = {}
    zones: dict[date, float] = {}
    for r in rows:
        (total if r["zone"] == 0 else zones)[r["bucket"]] = \
            (total if r["zone"] == 0 else zones).get(r["bucket"], 0.0) + float(r["value"])
    tz = await meta.timezone(conn)
    interval = await cq.interval_consumption(conn, p.id, start, end, granularity, str(tz))
    figures = []
    for b in buckets(granularity, start, end):
        integral = total.get(b, zones.get(b))  # the total register, else the sum of the zones
        losses = None if integral is None else integral * p.losses_pct / 100
        figures.append(Figure(b, None if integral is None else round(integral, 6),
                              None if b not in interval else round(float(interval[b]), 6),
                              None if losses is None else round(losses, 6),
                              None if integral is None else round(integral + losses, 6)))
    return PointConsumption(p, granularity, start, end, figures)
