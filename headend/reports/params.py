"""A report's selection from a form or a query string, checked: every bad value raises
Invalid naming the field, so the page can say it next to that field."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from askue.headend.errors import Invalid

MAX_DAYS = 366
RESOURCES = ("electricity", "cold_water", "hot_water", "heat", "gas")
GROUPS = ("house", "gateway", "organisation")
SOURCES = ("gateway", "manual", "file", "vee")


@dataclass(frozen=True)
class Params:
    start: date
    end: date  # inclusive: the last day shown
    org: str | None = None
    group: str = "house"
    source: str | None = None
    resource: str | None = None
    horizon_days: int = 90
    unknown: bool = False

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _date(raw: str, name: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise Invalid(name, f"{name}: a date as YYYY-MM-DD", "дата в виде ДД.ММ.ГГГГ") from None


def _choice(raw: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    v = (raw.get(name) or "").strip()
    if not v:
        return None
    if v not in allowed:
        raise Invalid(name, f"{name}: one of {', '.join(allowed)}", "выберите значение из списка")
    return v


def parse(raw: Mapping[str, str], today: date, *, default_start: date, default_end: date) -> Params:
    """`raw`: from, to, org, group, source, resource, horizon, unknown (the organisation is
    checked against the principal's by the report: common.scope_of)."""
    start = _date(raw["from"], "from") if (raw.get("from") or "").strip() else default_start
    end = _date(raw["to"], "to") if (raw.get("to") or "").strip() else default_end
    if end < start:
        raise Invalid("to", "to: must not be before from", "конец периода раньше начала")
    if (end - start).days + 1 > MAX_DAYS:
        raise Invalid("to", f"the period is longer than {MAX_DAYS} days", f"период длиннее {MAX_DAYS} дней")
    if start > today:
        raise Invalid("from", "from: the period begins in the future", "начало периода в будущем")
    org = (raw.get("org") or "").strip() or None
    horizon_raw = (raw.get("horizon") or "").strip()
    horizon = 90
    if horizon_raw:
        try:
            horizon = int(horizon_raw)
        except ValueError:
            raise Invalid("horizon", "horizon: a whole number of days", "укажите целое число дней") from None
        if not 0 <= horizon <= 3650:
            raise Invalid("horizon", "horizon: 0 to 3650 days", "от 0 до 3650 дней")
    return Params(start, end, org, _choice(raw, "group", GROUPS) or "house", _choice(raw, "source", SOURCES),
                  _choice(raw, "resource", RESOURCES), horizon, (raw.get("unknown") or "") in ("1", "true", "on"))


def last_days(today: date, n: int, *, include_today: bool = True) -> tuple[date, date]:
    end = today if include_today else today - timedelta(days=1)
    return end - timedelta(days=n - 1), end


def previous_month(today: date) -> tuple[date, date]:
    first = today.replace(day=1)
    last = first - timedelta(days=1)
    return last.replace(day=1), last
