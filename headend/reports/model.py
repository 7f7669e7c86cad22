"""A report as pages, documents and the API show it: titled sections of typed columns and
rows, in one language, with the selection it was made for."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from askue.headend import units


@dataclass(frozen=True)
class Column:
    key: str
    ru: str
    en: str
    kind: str = "text"  # text | int | num | pct | date | time
    digits: int = 3
    width: int = 20  # share of the page width in a PDF
    link: str | None = None  # meter | account | gateway: the pages link the cell to that object

    def title(self, lang: str) -> str:
        return self.ru if lang != "en" else self.en


@dataclass
class Section:
    title: str | None
    columns: list[Column]
    rows: list[dict[str, Any]]
    total: dict[str, Any] | None = None  # a last row «Итого», same keys
    empty: str = ""  # what to say when there are no rows


@dataclass
class Report:
    name: str
    title: str
    selection: list[tuple[str, str]]  # (what, value) lines describing what was asked
    sections: list[Section]
    notes: list[str] = field(default_factory=list)
    generated: datetime | None = None
    params: Any = None  # the reports.params.Params it was made for


def cell(col: Column, v: Any, lang: str, tz: tzinfo) -> str:
    """A value as the page and the text documents print it."""
    if v is None or v == "":
        return "" if col.kind == "text" else "—"
    if col.kind == "int":
        return units.number(int(v), lang, 0)
    if col.kind == "num":
        return units.number(float(v), lang, col.digits)
    if col.kind == "pct":
        return f"{units.number(float(v), lang, 1)}{units.NBSP}%"
    if col.kind == "date" and isinstance(v, date):
        return v.strftime("%d.%m.%Y")
    if col.kind == "time" and isinstance(v, datetime):
        return v.astimezone(tz).strftime("%d.%m.%Y %H:%M")
    return str(v)


def tz_note(tz: tzinfo, lang: str) -> str:
    off = datetime.now(tz).strftime("%z")
    name = getattr(tz, "key", str(tz))
    return (f"Время и сутки — по часовому поясу {name} (UTC{off[:3]}:{off[3:]})" if lang != "en"
            else f"Times and days in {name} (UTC{off[:3]}:{off[3:]})")
