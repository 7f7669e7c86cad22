"""The period a consumption page or document covers: a month, a year, a day or a range
of days, its buckets (days, or months for a year), its label, and the periods before
and after it for the ← / → buttons.

Input comes from a page's query string: `period=month&value=2026-11`,
`period=year&value=2026`, `period=day&value=2026-11-15`,
`period=range&from=2026-11-01&to=2026-11-20` (both days included). Bad input raises
`Invalid` naming the field, in words an operator understands.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from askue.headend.errors import Invalid

KINDS = ("month", "year", "day", "range")
MAX_RANGE_DAYS = 366
MONTHS_RU = ("январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь", "октябрь",
             "ноябрь", "декабрь")
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")


def next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def prev_month(d: date) -> date:
    return date(d.year - (d.month == 1), (d.month - 2) % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    kind: str  # month | year | day | range
    start: date
    end: date  # exclusive

    @property
    def granularity(self) -> str:
        """Buckets of the period's tables and charts: months for a year, else days."""
        return "month" if self.kind == "year" else "day"

    @property
    def last(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def buckets(self) -> list[date]:
        out, d = [], self.start
        while d < self.end:
            out.append(d)
            d = next_month(d) if self.granularity == "month" else d + timedelta(days=1)
        return out

    def label(self, lang: str = "ru") -> str:
        if self.kind == "month":
            return f"{(MONTHS_EN if lang == 'en' else MONTHS_RU)[self.start.month - 1]} {self.start.year}"
        if self.kind == "year":
            return f"{self.start.year}" + ("" if lang == "en" else " год")
        if self.kind == "day":
            return self.start.strftime("%d.%m.%Y")
        return f"{self.start:%d.%m.%Y} — {self.last:%d.%m.%Y}"

    def bucket_label(self, b: date, lang: str = "ru") -> str:
        if self.granularity == "month":
            return f"{(MONTHS_EN if lang == 'en' else MONTHS_RU)[b.month - 1]} {b.year}"
        return f"{b:%d.%m.%Y}"

    def shift(self, step: int) -> Period:
        """The period `step` lengths before (−1) or after (+1) this one."""
        if self.kind == "month":
            s = self.start
            for _ in range(abs(step)):
                s = next_month(s) if step > 0 else prev_month(s)
            return Period("month", s, next_month(s))
        if self.kind == "year":
            y = self.start.year + step
            return Period("year", date(y, 1, 1), date(y + 1, 1, 1))
        n = timedelta(days=self.days * step)
        return Period(self.kind, self.start + n, self.end + n)

    def params(self) -> dict[str, str]:
        """The query string that selects this period."""
        if self.kind == "month":
            return {"period": "month", "value": f"{self.start:%Y-%m}"}
        if self.kind == "year":
            return {"period": "year", "value": str(self.start.year)}
        if self.kind == "day":
            return {"period": "day", "value": self.start.isoformat()}
        return {"period": "range", "from": self.start.isoformat(), "to": self.last.isoformat()}


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise Invalid(name, f"{name}: a date as YYYY-MM-DD, got {text[:20]!r}",
                      f"Дата в виде ГГГГ-ММ-ДД, например 2026-11-15 (введено «{text[:20]}»)") from None


def _year(y: int, name: str) -> None:
    if not 2000 <= y <= 2100:
        raise Invalid(name, "year between 2000 and 2100", "Год от 2000 до 2100")


def parse(kind: str | None, value: str | None, today: date, start: str | None = None,
          end: str | None = None) -> Period:
    """The period a query string asks for; no value means the one containing today."""
    kind = kind or "month"
    if kind == "date":  # the older name of a single day
        kind = "day"
    value = (value or "").strip()
    if kind == "month":
        if not value:
            s = today.replace(day=1)
        else:
            try:
                y, m = (int(x) for x in value.split("-"))
                s = date(y, m, 1)
            except ValueError:
                raise Invalid("value", f"month as YYYY-MM, got {value[:20]!r}",
                              f"Месяц в виде ГГГГ-ММ, например 2026-11 (введено «{value[:20]}»)") from None
            _year(y, "value")
        return Period("month", s, next_month(s))
    if kind == "year":
        try:
            y = int(value) if value else today.year
        except ValueError:
            raise Invalid("value", f"year as YYYY, got {value[:20]!r}",
                          f"Год в виде ГГГГ, например 2026 (введено «{value[:20]}»)") from None
        _year(y, "value")
        return Period("year", date(y, 1, 1), date(y + 1, 1, 1))
    if kind == "day":
        d = _day(value, "value") if value else today
        _year(d.year, "value")
        return Period("day", d, d + timedelta(days=1))
    if kind == "range":
        s = _day(start, "from") if start and start.strip() else today.replace(day=1)
        e = _day(end, "to") if end and end.strip() else today
        _year(s.year, "from")
        _year(e.year, "to")
        if e < s:
            raise Invalid("to", "`to` is before `from`", "Дата «по» раньше даты «с»")
        if (e - s).days + 1 > MAX_RANGE_DAYS:
            raise Invalid("to", f"a range is at most {MAX_RANGE_DAYS} days; choose a year instead",
                          f"Период не длиннее {MAX_RANGE_DAYS} дней; для большего выберите год")
        return Period("range", s, e + timedelta(days=1))
    raise Invalid("period", f"period must be one of {', '.join(KINDS)}", "Период: месяц, год, дата или интервал")
