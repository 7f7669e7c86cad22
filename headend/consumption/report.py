"""Consumption of an organisation or a house over a period, as the overview page, the
accounts page and their documents show it: per resource, one row per day (per month for a
year) with ИПУ and ОДПУ summed apart, per tariff zone, and the house balance.

House balance (небаланс) of a bucket = Σ over houses that have an ОДПУ reading for the
resource in that bucket of (ОДПУ − Σ ИПУ of that house), on the total register (zone 0);
in % of those houses' ОДПУ. Houses without an ОДПУ do not enter it, so a flat-only house
never shows as a 100 % loss. Figures come from the storage consumption query (register
rollups × multiplier, rollovers handled), grouped by house.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

import psycopg

from askue.headend.auth.permissions import Principal
from askue.headend.consumption.periods import Period
from askue.headend.storage.queries import consumption as cq

RESOURCE_ORDER = ("electricity", "cold_water", "hot_water", "heat", "gas", "unknown")


@dataclass
class Row:
    bucket: date | None  # None: the period's total
    individual: dict[int, float] = field(default_factory=dict)  # zone -> value
    balance: dict[int, float] = field(default_factory=dict)
    matched_balance: float = 0.0  # ОДПУ of the houses that enter the balance
    matched_individual: float = 0.0  # Σ ИПУ of those houses
    houses: int = 0  # houses in the balance

    @property
    def imbalance(self) -> float | None:
        return self.matched_balance - self.matched_individual if self.houses else None

    @property
    def imbalance_pct(self) -> float | None:
        if not self.houses or self.matched_balance <= 0:
            return None
        return 100.0 * (self.matched_balance - self.matched_individual) / self.matched_balance

    def add(self, other: Row) -> None:
        for z, v in other.individual.items():
            self.individual[z] = self.individual.get(z, 0.0) + v
        for z, v in other.balance.items():
            self.balance[z] = self.balance.get(z, 0.0) + v
        self.matched_balance += other.matched_balance
        self.matched_individual += other.matched_individual
        self.houses = max(self.houses, other.houses)


@dataclass
class ResourceReport:
    resource: str
    zones: list[int]  # ИПУ tariff zones with data, total (0) first
    balance_zones: list[int]  # ОДПУ tariff zones with data
    rows: list[Row]  # one per bucket of the period, in order (buckets without data are empty rows)
    total: Row
    meters: dict[str, int]  # meter class -> meters with data

    def series(self, meter_class: str = "individual", zone: int = 0) -> list[tuple[date, float]]:
        return [(r.bucket, (r.individual if meter_class == "individual" else r.balance).get(zone, 0.0))
                for r in self.rows if r.bucket is not None]


@dataclass
class Report:
    period: Period
    resources: list[ResourceReport]
    scope_label: str = ""  # the organisations or the house

    def get(self, resource: str) -> ResourceReport | None:
        return next((r for r in self.resources if r.resource == resource), None)


def build(rows: list[dict], period: Period) -> Report:
    """A report from consumption rows grouped by house (bucket, resource, zone, meter_class,
    group_key, value, meters); pure, so the balance arithmetic is tested on its own."""
    by_res: dict[str, dict[date, dict[str, dict]]] = defaultdict(lambda: defaultdict(lambda: {
        "ind": defaultdict(float), "bal": defaultdict(float), "house_ind": defaultdict(float),
        "house_bal": {}, "meters": defaultdict(int)}))
    for r in rows:
        b = by_res[r["resource"]][r["bucket"]]
        v = float(r["value"] or 0.0)
        if r["meter_class"] == "balance":
            b["bal"][r["zone"]] += v
            if r["zone"] == 0:
                b["house_bal"][r["group_key"]] = b["house_bal"].get(r["group_key"], 0.0) + v
        else:
            b["ind"][r["zone"]] += v
            if r["zone"] == 0:
                b["house_ind"][r["group_key"]] += v
        if r["zone"] == 0:
            b["meters"][r["meter_class"]] += int(r["meters"] or 0)
    out = []
    for res in sorted(by_res, key=lambda x: RESOURCE_ORDER.index(x) if x in RESOURCE_ORDER else 99):
        buckets = by_res[res]
        zones = sorted({z for b in buckets.values() for z in b["ind"]})
        bzones = sorted({z for b in buckets.values() for z in b["bal"]})
        total = Row(None)
        rows_out = []
        for day in period.buckets():
            b = buckets.get(day)
            row = Row(day)
            if b is not None:
                row.individual = dict(b["ind"])
                row.balance = dict(b["bal"])
                for house, bal in b["house_bal"].items():
                    row.matched_balance += bal
                    row.matched_individual += b["house_ind"].get(house, 0.0)
                    row.houses += 1
            rows_out.append(row)
            total.add(row)
        meters = {c: max((b["meters"][c] for b in buckets.values()), default=0) for c in ("individual", "balance")}
        out.append(ResourceReport(res, zones, bzones, rows_out, total, meters))
    return Report(period, out)


def _granularity(period: Period) -> str:
    return "month" if period.granularity == "month" else "day"


async def consumption_report(conn: psycopg.AsyncConnection, principal: Principal, period: Period, *,
                             org_codes: list[str], house: str | None = None) -> Report:
    """The report of a house (when given) or of the organisations, inside the principal's scope."""
    keys = [("house", house)] if house else [("organisation", c) for c in org_codes]
    rows: list[dict] = []
    for level, key in keys:
        q = cq.ConsumptionQuery(level=level, key=key, granularity=_granularity(period), start=period.start,
                                end=period.end, group="house")
        rows += await cq.consumption(conn, q, principal.scope)
    return build(rows, period)


async def account_totals(conn: psycopg.AsyncConnection, principal: Principal, period: Period,
                         org_codes: list[str]) -> dict[str, dict[tuple[str, int], float]]:
    """Each account's individual-meter consumption over the period per (resource, zone)."""
    gran = {"month": "month", "year": "year"}.get(period.kind, "day")
    out: dict[str, dict[tuple[str, int], float]] = defaultdict(lambda: defaultdict(float))
    for code in org_codes:
        q = cq.ConsumptionQuery(level="organisation", key=code, granularity=gran, start=period.start,
                                end=period.end, group="account")
        for r in await cq.consumption(conn, q, principal.scope):
            if r["group_key"] and r["meter_class"] == "individual":
                out[r["group_key"]][(r["resource"], r["zone"])] += r["value"] or 0.0
    return out


async def meter_rows(conn: psycopg.AsyncConnection, principal: Principal, code: str, period: Period) -> list[dict]:
    """One meter's consumption per bucket of the period and tariff zone."""
    q = cq.ConsumptionQuery(level="meter", key=code, granularity=_granularity(period), start=period.start,
                            end=period.end)
    return await cq.consumption(conn, q, principal.scope)
