"""The cabinet's Excel downloads: consumption of a point by day or month, and the
history of readings (headend/documents.py draws them)."""
from __future__ import annotations

from datetime import tzinfo

from askue.headend import documents, units
from askue.headend.customers.consumption import PointConsumption
from askue.headend.customers.points import HistoryRow
from askue.headend.names import reading_status


def _n(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}".rstrip("0").rstrip(".")


def consumption(pc: PointConsumption, lang: str = "ru") -> documents.Document:
    p = pc.point
    ru = lang == "ru"
    u = units.unit(p.resource, None, lang)
    elec = p.resource in ("electricity", "unknown")
    fmt = "%d.%m.%Y" if pc.granularity == "day" else "%m.%Y"
    first = ("Дата" if pc.granularity == "day" else "Месяц") if ru else ("Day" if pc.granularity == "day" else "Month")
    head = [first, f"{'Расход' if ru else 'Consumption'}, {u}"]
    if elec:
        head += ([f"Расход интервальный, {u}", f"Дельта, {u}", f"Потери {p.losses_pct:g} %, {u}", f"Расход с потерями, {u}"]
                 if ru else [f"Interval consumption, {u}", f"Delta, {u}", f"Losses {p.losses_pct:g} %, {u}",
                             f"With losses, {u}"])
    rows = [[f.bucket.strftime(fmt), _n(f.integral), _n(f.interval), _n(f.delta), _n(f.losses), _n(f.with_losses)]
            for f in pc.figures]
    ti, tv = pc.total("integral"), pc.total("interval")
    rows.append(["Итого" if ru else "Total", _n(ti), _n(tv), _n(None if ti is None or tv is None else ti - tv),
                 _n(pc.total("losses")), _n(pc.total("with_losses"))])
    rows = [r[:len(head)] for r in rows]
    title = (f"Расход по ПУ {p.serial or p.code}" if ru else f"Consumption of meter {p.serial or p.code}")
    lines = [f"{'Договор' if ru else 'Contract'}: {p.account or '—'}",
             f"{'Энергообъект' if ru else 'Energy object'}: {p.site_name or p.address or '—'}",
             f"{'Период' if ru else 'Period'}: {pc.start:%d.%m.%Y} – {pc.end:%d.%m.%Y}"]
    if elec:
        lines.insert(2, f"{'Расчётный коэф.' if ru else 'Multiplier'} {p.multiplier:g} · "
                        f"{'Потери' if ru else 'Losses'} {p.losses_pct:g} %")
    series = [("Расход" if ru else "Consumption", [f.integral for f in pc.figures], "#1f6fb2")]
    if elec:
        series.append(("Расход интервальный" if ru else "Interval", [f.interval for f in pc.figures], "#e08a1e"))
    chart = documents.Chart(title, [f.bucket.strftime(fmt) for f in pc.figures], series, u)
    return documents.Document(title, lines, [documents.Table(title, head, rows, numeric=set(range(1, len(head)))),
                                             chart], name=f"consumption_{p.serial or p.code}_{pc.start:%Y%m%d}")


def history(rows: list[HistoryRow], start, end, tz: tzinfo, lang: str = "ru") -> documents.Document:
    ru = lang == "ru"
    head = (["Дата и время", "ПУ", "Договор", "Шкала", "Показание", "Источник", "Статус", "Причина"] if ru else
            ["Time", "Meter", "Contract", "Scale", "Reading", "Source", "Status", "Reason"])
    body = [[r.ts.astimezone(tz).strftime("%d.%m.%Y %H:%M"), r.serial or r.meter, r.account or "", r.scale,
             _n(r.value), r.origin, reading_status(r.status, lang), r.reason] for r in rows]
    title = "История показаний" if ru else "Reading history"
    return documents.Document(title, [f"{'Период' if ru else 'Period'}: {start:%d.%m.%Y} – {end:%d.%m.%Y}"],
                              [documents.Table(title, head, body, numeric={4})],
                              name=f"readings_{start:%Y%m%d}_{end:%Y%m%d}")

