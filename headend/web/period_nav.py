"""The period selector of the consumption pages and the meter card: the period from the
query string (or the field error that replaces it), links to switch between month, year,
day and range around the same start, and the ← / → periods, keeping the page's other
filters."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import urlencode

from fastapi import Request

from askue.headend.consumption.periods import Period, next_month, parse
from askue.headend.errors import Invalid

PERIOD_KEYS = ("period", "value", "from", "to")


@dataclass
class PeriodNav:
    per: Period | None  # None when the input was bad
    errors: dict[str, str] = field(default_factory=dict)  # field -> message in the operator's language
    kind: str = "month"
    raw: dict[str, str] = field(default_factory=dict)  # what was typed, shown back in the fields
    links: dict[str, str] = field(default_factory=dict)  # month/year/day/range -> query string
    prev: str = ""
    next: str = ""
    prev_label: str = ""
    next_label: str = ""
    keep: dict[str, str] = field(default_factory=dict)  # the page's other filters


def _qs(params: dict[str, str]) -> str:
    return "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})


def period_nav(request: Request, today: date, lang: str, *, drop: tuple[str, ...] = ("page",),
               default: Period | None = None) -> PeriodNav:
    """`default`: the period when the query string names none (else the month of today)."""
    q = request.query_params
    keep = {k: v for k, v in q.items() if k not in PERIOD_KEYS and k not in drop and k != "lang"}
    raw = {k: q.get(k, "") for k in PERIOD_KEYS}
    if default is not None and not any(raw.values()):
        raw.update({k: "" for k in PERIOD_KEYS} | default.params())
    kind = raw["period"] or "month"
    nav = PeriodNav(None, kind=kind if kind in ("month", "year", "day", "range") else "month", raw=raw, keep=keep)
    try:
        per = parse(raw["period"] or None, raw["value"], today, raw["from"], raw["to"])
    except Invalid as e:
        nav.errors[e.field or "value"] = e.text(lang)
        per = None
    anchor = per.start if per else today
    nav.per = per
    m = anchor.replace(day=1)
    range_end = next_month(m)
    if m <= today < range_end:  # this month so far
        range_end = today + timedelta(days=1)
    variants = {"month": Period("month", m, next_month(m)),
                "year": Period("year", date(anchor.year, 1, 1), date(anchor.year + 1, 1, 1)),
                "day": Period("day", anchor, anchor + timedelta(days=1)),
                "range": per if per and per.kind == "range" else Period("range", m, range_end)}
    nav.links = {k: _qs(v.params() | keep) for k, v in variants.items()}
    if per:
        before, after = per.shift(-1), per.shift(1)
        nav.prev, nav.next = _qs(before.params() | keep), _qs(after.params() | keep)
        nav.prev_label, nav.next_label = before.label(lang), after.label(lang)
    return nav
