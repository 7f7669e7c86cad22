"""The pages' downloads as documents (PDF, Excel, CSV): the consumption overview with its
charts, tables and readings; «Абоненты и расход»; the meter table; the meter card. Every
name comes from `askue.headend.names`, every number from `askue.headend.units`, every
time is in the organisation's time zone with the zone named in the document."""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from askue.headend import names, units
from askue.headend.consumption.periods import Period
from askue.headend.consumption.report import Report, ResourceReport, Row
from askue.headend.contact import contact_bucket
from askue.headend.documents import Chart, Document, Table
from askue.headend.web.i18n import t

COLORS = {"electricity": "#1f6fb2", "cold_water": "#1e88e5", "hot_water": "#e53935", "heat": "#8e24aa",
          "gas": "#6d4c41", "unknown": "#607d8b"}


def unit_of(resource: str, lang: str) -> str:
    return units.unit(resource, None, lang)


def _n(v: float | None, lang: str, places: int = 3) -> str:
    return "" if v is None else units.number(v, lang, places)


def _dt(v: datetime | None, tz: tzinfo) -> str:
    return v.astimezone(tz).strftime("%d.%m.%Y %H:%M") if v else ""


def _d(v) -> str:
    return v.strftime("%d.%m.%Y") if v else ""


def _stamp(tz: tzinfo, lang: str) -> str:
    return f"{t('generated', lang)}: {datetime.now(tz):%d.%m.%Y %H:%M} ({names.tz_label(tz, lang)})"


def resource_columns(rr: ResourceReport, lang: str) -> list[str]:
    ind, bal = names.meter_class("individual", lang), names.meter_class("balance", lang)
    head = [f"{ind}: {names.zone(z, lang)}" for z in rr.zones]
    head += [f"{bal}: {names.zone(z, lang)}" for z in rr.balance_zones]
    if rr.balance_zones:
        head += [t("imbalance", lang), t("imbalance_pct", lang)]
    return head


def resource_cells(rr: ResourceReport, row: Row, lang: str) -> list[str]:
    cells = [_n(row.individual.get(z), lang) for z in rr.zones]
    cells += [_n(row.balance.get(z), lang) for z in rr.balance_zones]
    if rr.balance_zones:
        cells += [_n(row.imbalance, lang), _n(row.imbalance_pct, lang, 1)]
    return cells


def resource_table(rr: ResourceReport, per: Period, lang: str) -> Table:
    head = [t("month" if per.granularity == "month" else "date", lang)] + resource_columns(rr, lang)
    rows = [[per.bucket_label(r.bucket, lang)] + resource_cells(rr, r, lang) for r in rr.rows]
    rows.append([t("period_total", lang)] + resource_cells(rr, rr.total, lang))
    return Table(f"{names.resource(rr.resource, lang)}, {unit_of(rr.resource, lang)}", head, rows,
                 numeric=set(range(1, len(head))))


def summary_table(report: Report, lang: str) -> Table:
    """«Суммарный расход»: ИПУ and ОДПУ per resource and tariff over the period."""
    head = [t("meter_class", lang)]
    keys = []
    for rr in report.resources:
        for z in sorted(set(rr.zones) | set(rr.balance_zones)):
            keys.append((rr, z))
            head.append(f"{names.resource(rr.resource, lang)}, {unit_of(rr.resource, lang)}: {names.zone(z, lang)}")
    rows = []
    for cls in ("individual", "balance"):
        rows.append([names.meter_class(cls, lang)] + [
            _n((rr.total.individual if cls == "individual" else rr.total.balance).get(z), lang) or "—"
            for rr, z in keys])
    return Table(t("summary", lang), head, rows, numeric=set(range(1, len(head))))


def statement_table(statement: list[dict], per: Period, tz: tzinfo, lang: str) -> Table:
    head = [t("address", lang), t("flat", lang), t("account", lang), t("subscriber", lang), t("serial", lang),
            t("channel", lang), t("reading_start", lang), t("reading_end", lang),
            f"{t('reading_time', lang)} ({names.tz_short(tz, lang=lang)})", t("consumption", lang)]
    rows = []
    for r in statement:
        unit = units.unit(r["resource"], r["obis"], lang)
        rows.append([r["address"] or "", r["flat"] or "", r["account"] or ("ОДПУ" if r["is_balance"] else ""),
                     r["subscriber"] or "", r["serial"] or r["code"],
                     names.channel(r["obis"], lang, zones=r["tariff_zones"]),
                     _n(r["start_value"], lang), _n(r["end_value"], lang), _dt(r["end_ts"], tz),
                     f"{_n(r['consumption'], lang)} {unit}"])
    return Table(f"{t('readings', lang)}: {per.label(lang)}", head, rows, numeric={6, 7, 9},
                 weights=[22, 5, 9, 16, 10, 12, 10, 10, 11, 11])


def consumption_document(report: Report, statement: list[dict], lang: str, tz: tzinfo, *, orgs: list[str],
                         house: dict | None = None) -> Document:
    per = report.period
    lines = [f"{t('organisation', lang)}: {', '.join(orgs)}"]
    if house:
        lines.append(f"{t('house', lang)}: {house['address'] or house['code']}")
    lines += [f"{t('period', lang)}: {per.label(lang)}", _stamp(tz, lang), t("balance_note", lang)]
    blocks: list = []
    labels = [b.strftime("%m.%Y") if per.granularity == "month" else b.strftime("%d.%m") for b in per.buckets()]
    for rr in report.resources:
        series = [(t("individual_meters", lang), [v for _, v in rr.series("individual", 0)],
                   COLORS.get(rr.resource, "#1f6fb2"))]
        if rr.balance_zones:
            series.append((t("balance_meters", lang), [v for _, v in rr.series("balance", 0)], "#f9a825"))
        if len(labels) > 1:
            blocks.append(Chart(f"{names.resource(rr.resource, lang)}: {t('consumption', lang).lower()}", labels,
                                series, unit_of(rr.resource, lang)))
        blocks.append(resource_table(rr, per, lang))
    blocks.append(summary_table(report, lang))
    blocks.append(statement_table(statement, per, tz, lang))
    return Document(f"{t('overview', lang)}: {per.label(lang)}", lines, blocks,
                    name=f"consumption_{per.start.isoformat()}")


def zone_lines(cons: dict[tuple[str, int], float], resource: str, lang: str) -> str:
    zones = sorted(z for r, z in cons if r == resource)
    return "; ".join(f"{names.zone(z, lang)}: {_n(cons[(resource, z)], lang)}" for z in zones) or "—"


def accounts_document(rows: list[dict], cons: dict, cols: list[str], report: Report | None, per: Period,
                      lang: str, tz: tzinfo) -> Document:
    head = [t("account", lang), t("subscriber", lang), t("address", lang), t("flat", lang)]
    head += [f"{names.resource(r, lang)}, {unit_of(r, lang)}" for r in cols]
    head.append(t("meters", lang))
    out = []
    for a in rows:
        c = cons.get(a["code"], {})
        meters = ", ".join(f"{m['serial'] or m['code']} ({m['model'] or names.resource(m['resource'], lang)})"
                           for m in a["meters"])
        out.append([a["code"], a["subscriber"] or "", a["address"] or "", a["flat"] or ""]
                   + [zone_lines(c, r, lang) for r in cols] + [meters])
    blocks: list = [Table(t("accounts", lang), head, out, weights=[9, 16, 22, 5] + [18] * len(cols) + [20])]
    if report is not None:
        blocks.append(summary_table(report, lang))
    return Document(f"{t('accounts', lang)}: {per.label(lang)}", [f"{t('period', lang)}: {per.label(lang)}",
                                                                  _stamp(tz, lang)], blocks,
                    name=f"accounts_{per.start.isoformat()}")


def reading_lines(m: dict, lang: str, tz: tzinfo) -> str:
    return "; ".join(f"{names.channel(r['obis'], lang, zones=m.get('tariff_zones'))}: "
                     f"{_n(r['value'], lang) if r['value'] is not None else '—'}" for r in m["latest"])


def meter_table_document(rows: list[dict], lang: str, tz: tzinfo, now: datetime, filters: str) -> Document:
    tzs = names.tz_short(tz, lang=lang)
    head = ["№", t("serial", lang), t("model", lang), t("resource", lang), t("account", lang),
            t("subscriber", lang), t("address", lang), t("flat", lang), t("installed_at", lang),
            t("verified_at", lang), t("verification_due", lang), t("readings", lang),
            f"{t('reading_time', lang)} ({tzs})", t("quality", lang), t("contact", lang),
            f"{t('last_contact', lang)} ({tzs})", t("status", lang), t("open_events", lang)]
    out = []
    for i, m in enumerate(rows, 1):
        out.append([str(i), m["serial"] or m["code"], m["model"] or "", names.resource(m["resource"], lang)
                    + (f" ({names.meter_class('balance', lang)})" if m["is_balance"] else ""),
                    m["account"] or "", m["subscriber"] or "", m["address"] or "", m["flat"] or "",
                    _d(m["installed_at"]), _d(m["verified_at"]), _d(m["verification_due"]),
                    reading_lines(m, lang, tz), _dt(m["reading_ts"], tz), names.quality(m["reading_quality"], lang),
                    names.contact(contact_bucket(m["last_contact"], now), lang), _dt(m["last_contact"], tz),
                    names.meter_status(m["status"], lang), str(m["open_events"] or "")])
    return Document(t("meter_table", lang), [filters, _stamp(tz, lang)] if filters else [_stamp(tz, lang)],
                    [Table(t("meter_table", lang), head, out, numeric={0, 17},
                           weights=[3, 8, 10, 8, 7, 12, 16, 4, 7, 7, 7, 16, 9, 7, 7, 9, 7, 4])],
                    name=f"meters_{now.astimezone(tz):%Y%m%d_%H%M}")


def meter_card_document(data: dict, lang: str, tz: tzinfo) -> Document:
    """The card as a document: facts, current values, consumption of the period per tariff,
    the hourly profile, the readings of the period and the history."""
    from askue.headend.storage.queries.meter_history import describe

    m, per = data["m"], data["per"]
    tzs = names.tz_short(tz, lang=lang)
    facts = [(t("serial", lang), m["serial"] or m["code"]), (t("model", lang), m["model"] or ""),
             (t("resource", lang), names.resource(m["resource"], lang)
              + (f" ({names.meter_class('balance', lang)})" if m["is_balance"] else "")),
             (t("account", lang), f"{m['account_code'] or ''} {m['account_subscriber'] or ''}".strip()),
             (t("address", lang), (m["site_address"] or "") + (f", {t('flat', lang)} {m['account_flat']}"
                                                               if m["account_flat"] else "")),
             (t("installed_at", lang), _d(m["installed_at"])), (t("verified_at", lang), _d(m["verified_at"])),
             (t("verification_due", lang), _d(m["verification_due"])),
             (t("multiplier", lang), _n(m["multiplier"], lang)), (t("status", lang),
                                                                  names.meter_status(m["status"], lang)),
             (t("last_contact", lang), _dt(m["last_contact"], tz) or t("never", lang))]
    blocks: list = [Table(t("meter_facts", lang), [t("field", lang), t("value", lang)], [list(f) for f in facts],
                          weights=[1, 3])]
    blocks.append(Table(t("current_values", lang),
                        [t("channel", lang), t("value", lang), f"{t('meter_time', lang)} ({tzs})",
                         f"{t('received_at', lang)} ({tzs})", t("quality", lang)],
                        [[names.channel(r["obis"], lang, zones=m["tariff_zones"]),
                          units.amount(r["value"], m["resource"], r["obis"], lang),
                          _dt(r["ts"], tz) if r["ts_source"] == "meter" else "—", _dt(r["received_at"], tz),
                          names.quality(r["quality"], lang)] for r in data["current"]], numeric={1}))
    zones = data["zones"]
    unit = units.unit(m["resource"], None, lang)
    labels = [per.bucket_label(b, lang) for b, _ in data["table"]]
    if zones and len(labels) > 1:
        shown = [0] if 0 in zones and len(zones) > 1 else zones
        blocks.append(Chart(f"{t('consumption', lang)}: {per.label(lang)}", [f"{b:%d.%m}" if per.granularity == "day" else f"{b:%m.%Y}"
                                                                             for b, _ in data["table"]],
                            [(names.zone(z, lang), [vs[zones.index(z)] for _, vs in data["table"]],
                              COLORS.get(m["resource"], "#1f6fb2")) for z in shown], unit))
    head = [t("month" if per.granularity == "month" else "date", lang)] + [f"{names.zone(z, lang)}, {unit}"
                                                                          for z in zones]
    rows = [[lab] + [_n(v, lang) for v in vs] for lab, (_, vs) in zip(labels, data["table"], strict=True)]
    rows.append([t("period_total", lang)] + [_n(v, lang) for v in data["totals"]])
    blocks.append(Table(f"{t('consumption', lang)}: {per.label(lang)}", head, rows, numeric=set(range(1, len(head)))))
    p = data["profile"]
    if p.channels:
        ch = p.main()
        punit = units.unit(m["resource"], ch, lang)
        if len(p.hours) <= 25:
            blocks.append(Chart(f"{t('profile', lang)}: {names.channel(ch, lang)}", [f"{h:%H}" for h in p.hours],
                                [(names.channel(ch, lang), [p.values[ch].get(h) for h in p.hours], "#1f6fb2")],
                                punit))
            blocks.append(Table(f"{t('profile', lang)}, {punit}", [f"{t('hour', lang)} ({tzs})"]
                                + [names.channel(c, lang) for c in p.channels],
                                [[f"{h:%H:%M}–{(h + timedelta(hours=1)).astimezone(tz):%H:%M}"]
                                 + [_n(p.values[c].get(h), lang) for c in p.channels] for h in p.hours],
                                numeric=set(range(1, len(p.channels) + 1))))
        else:
            blocks.append(Table(f"{t('profile', lang)}: {names.channel(ch, lang)}, {punit}",
                                [t("date", lang)] + [f"{i:02d}" for i in range(24)] + [t("day_total", lang)],
                                [[f"{d:%d.%m}"] + [_n(v, lang, 2) for v in vals] + [_n(s, lang, 2)]
                                 for d, vals, s in p.day_matrix()], numeric=set(range(1, 26))))
    blocks.append(Table(f"{t('readings', lang)}: {per.label(lang)}",
                        [f"{t('meter_time', lang)} ({tzs})", t("channel", lang), t("value", lang),
                         f"{t('received_at', lang)} ({tzs})", t("quality", lang), t("source", lang),
                         t("marks", lang)],
                        [[_dt(r["ts"], tz) + ("" if r["ts_source"] == "meter" else "*"),
                          names.channel(r["obis"], lang, zones=m["tariff_zones"]),
                          units.amount(r["value"], m["resource"], r["obis"], lang), _dt(r["received_at"], tz),
                          names.quality(r["quality"], lang), names.source(r["source"], lang),
                          names.reasons(r["reasons"], lang)] for r in data["readings"]], numeric={2}))
    hist = [[_dt(e.at, tz) if isinstance(e.at, datetime) else _d(e.at), *describe(e, m["resource"], lang, tz),
             " ".join(x for x in (names.actor(e.actor, lang), e.ip) if x), e.comment or ""] for e in data["history"]]
    blocks.append(Table(t("meter_history", lang), [t("time", lang), t("action", lang), t("details", lang),
                                                   t("who", lang), t("comment", lang)], hist,
                        weights=[10, 14, 36, 14, 16]))
    lines = [f"{t('period', lang)}: {per.label(lang)}", _stamp(tz, lang)]
    if data["n_readings"] > len(data["readings"]):
        lines.append(t("readings_first_n", lang, n=len(data["readings"]), total=data["n_readings"]))
    return Document(f"{t('meter', lang)} {m['serial'] or m['code']}", lines, blocks,
                    name=f"meter_{m['code']}_{per.start.isoformat()}")
