"""Rejected readings: what arrived, from which source, why it was refused and by which check,
from the three places refusals are kept —

- `dead_letters`: gateway payloads the ingest refused (not valid against the MQTT contract);
- `rejected_readings`: readings people and files offered and the readings service or a billing
  importer refused (migration 0311, `readings/rejections.py`);
- values VEE keeps out of billing: stored, but with a blocking reason (`vee/store.BLOCKING_REASONS`:
  reverse reading, spike, frozen value…), looked for by the reading's time in the period.

Newest first; at most LIMIT rows of each kind (a note says when there were more)."""
from __future__ import annotations

from datetime import tzinfo

import psycopg
from psycopg.rows import dict_row

from askue.headend import names, units
from askue.headend.auth.permissions import Principal, Scope
from askue.headend.ingest import dead_letters
from askue.headend.reports import common
from askue.headend.reports.model import Column, Report, Section, tz_note
from askue.headend.reports.params import Params
from askue.headend.storage.queries import gateways as gq
from askue.headend.vee.store import BLOCKING_REASONS

LIMIT = 2000
TITLE = ("Отклонённые показания", "Rejected readings")
COLUMNS = [
    Column("at", "Поступило", "Arrived", "time", width=22),
    Column("source", "Источник", "Source", width=24),
    Column("sender", "Кто передал", "Sent by", width=20),
    Column("meter", "Прибор учёта", "Meter", width=18, link="meter"),
    Column("what", "Что поступило", "What arrived", width=48),
    Column("reason", "Причина отказа", "Why refused", width=70),
    Column("refused_by", "Кем отклонено", "Refused by", width=30),
]
REASONS = {
    "reverse_reading": ("показание меньше предыдущего (обратный ход)", "below the previous reading (reverse)"),
    "spike": ("всплеск потребления", "consumption spike"),
    "over_limit": ("потребление выше лимита", "consumption above the limit"),
    "duplicate": ("повтор интервала профиля", "duplicate profile interval"),
    "wrong_period": ("неверная длительность интервала", "wrong interval length"),
    "frozen": ("зависшее значение (не меняется вместе со временем счётчика)", "frozen value"),
    "clock_drift": ("часы прибора учёта расходятся с точным временем", "the meter's clock drifts"),
}
SOURCE_TITLES = {"gateway": ("Шлюз", "Gateway"), "manual": ("Ввод вручную", "Entered by hand"),
                 "billing": ("Биллинг (API)", "Billing (API)"), "file": ("Шаблон показаний (файл)", "Readings template"),
                 "file_80020": ("Файл 80020", "80020 file"), "file_hourly": ("Часовой профиль (файл)", "Hourly profile"),
                 "estimate": ("Расчёт (VEE)", "Estimate (VEE)")}
BY = {"ingest": ("приём данных (проверка формата)", "ingest (format check)"),
      "readings": ("проверка показаний", "readings check"), "file": ("проверка файла", "file check"),
      "vee": ("проверка достоверности (VEE)", "validation (VEE)")}


def _t(pair: tuple[str, str], lang: str) -> str:
    return pair[lang == "en"]


async def _dead_letters(conn: psycopg.AsyncConnection, scope: Scope, start, end, lang: str) -> list[dict]:
    cond, params = gq.visible(scope)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT d.received_at, d.topic, d.gateway_id, d.payload, d.reason FROM dead_letters d "
            f"WHERE d.received_at >= %s AND d.received_at < %s AND (%s OR d.gateway_id IN "
            f"(SELECT g.id FROM gateways g WHERE {cond})) ORDER BY d.received_at DESC, d.id DESC LIMIT %s",
            [start, end, scope.everything, *params, LIMIT + 1])
        rows = await cur.fetchall()
        seen = None  # the meter codes a payload may name on this page: only those the principal sees
        if not scope.everything:
            mcond, mparams = scope.sql("org_id")
            await cur.execute(f"SELECT code FROM meters WHERE {mcond}", mparams)
            seen = {r["code"] for r in await cur.fetchall()}
    out = []
    for r in rows:
        text, meters = dead_letters.what(r["topic"], bytes(r["payload"]), lang,
                                         None if seen is None else seen.__contains__)
        out.append({"at": r["received_at"], "source": _t(SOURCE_TITLES["gateway"], lang),
                    "sender": r["gateway_id"] or ("неизвестно" if lang != "en" else "unknown"),
                    "meter": ", ".join(meters[:5]) + (" …" if len(meters) > 5 else ""), "what": text,
                    "reason": dead_letters.why(r["reason"], lang), "refused_by": _t(BY["ingest"], lang),
                    "detail": r["reason"], "kind": "gateway"})
    return out


def _what_manual(r: dict, lang: str) -> str:
    if r["source"] in ("file_80020", "file_hourly") or (r["field"] == "file"):
        return (f"файл «{r['file_name']}»" if lang != "en" else f"file “{r['file_name']}”") if r["file_name"] \
            else ("файл" if lang != "en" else "a file")
    parts = []
    if r["value"] is not None:
        parts.append(units.amount(r["value"], r["resource"], r["obis"], lang))
    elif r["value_text"]:
        parts.append(f"«{r['value_text']}»")
    if r["obis"]:
        parts.append(names.channel(r["obis"], lang))
    if r["ts"] is not None:
        parts.append(("на " if lang != "en" else "at ") + r["ts_local"])
    return ", ".join(parts) or ("показание" if lang != "en" else "a reading")


async def _manual(conn: psycopg.AsyncConnection, scope: Scope, start, end, lang: str, tz: tzinfo) -> list[dict]:
    cond, params = scope.sql("r.org_id")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT r.at, r.source, r.actor, r.actor_role, r.meter_ref, m.code AS meter, m.resource, r.obis, r.value, "
            "r.value_text, r.ts, r.field, r.message, r.message_ru, r.file_name FROM rejected_readings r "
            f"LEFT JOIN meters m ON m.id = r.meter_id WHERE r.at >= %s AND r.at < %s AND {cond} "
            "ORDER BY r.at DESC, r.id DESC LIMIT %s", [start, end, *params, LIMIT + 1])
        rows = await cur.fetchall()
    out = []
    for r in rows:
        r["ts_local"] = r["ts"].astimezone(tz).strftime("%d.%m.%Y %H:%M") if r["ts"] else ""
        src = "billing" if r["source"] == "manual" and r["actor_role"] == "billing" else r["source"]
        out.append({"at": r["at"], "source": _t(SOURCE_TITLES[src], lang), "sender": r["actor"],
                    "meter": r["meter"] or r["meter_ref"] or "", "what": _what_manual(r, lang),
                    "reason": r["message_ru"] if lang != "en" else r["message"],
                    "refused_by": _t(BY["file" if r["field"] in ("file", "row") else "readings"], lang),
                    "kind": "file" if r["source"].startswith("file") else "manual"})
    return out


async def _vee(conn: psycopg.AsyncConnection, scope: Scope, start, end, lang: str, tz: tzinfo) -> list[dict]:
    cond, params = scope.sql("m.org_id")
    blocking = sorted(BLOCKING_REASONS)
    part = ("SELECT v.received_at, v.ts, v.obis, v.value, v.reasons, v.source, v.gateway_id, m.code, m.resource "
            "FROM {t} v JOIN meters m ON m.id = v.meter_id WHERE v.ts >= %s AND v.ts < %s "
            f"AND v.reasons && %s::text[] AND {cond}")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"({part.format(t='register_readings')}) UNION ALL ({part.format(t='intervals')}) "
            "ORDER BY received_at DESC LIMIT %s",
            [start, end, blocking, *params, start, end, blocking, *params, LIMIT + 1])
        rows = await cur.fetchall()
    out = []
    for r in rows:
        when = r["ts"].astimezone(tz).strftime("%d.%m.%Y %H:%M")
        reasons = [_t(REASONS.get(x, (x, x)), lang) for x in r["reasons"] if x in BLOCKING_REASONS]
        out.append({"at": r["received_at"], "source": _t(SOURCE_TITLES.get(r["source"], (r["source"],) * 2), lang),
                    "sender": r["gateway_id"] or "", "meter": r["code"],
                    "what": f"{units.amount(r['value'], r['resource'], r['obis'], lang)}, "
                            f"{names.channel(r['obis'], lang)}, {'на' if lang != 'en' else 'at'} {when}",
                    "reason": "; ".join(reasons) + ("; в расчёт не берётся" if lang != "en" else "; not billed"),
                    "refused_by": _t(BY["vee"], lang), "kind": "vee"})
    return out


async def build(conn: psycopg.AsyncConnection, principal: Principal, p: Params, lang: str, tz: tzinfo) -> Report:
    scope = await common.scope_of(conn, principal, p.org)
    start, end = common.bounds(p, tz)
    wanted = {p.source} if p.source else {"gateway", "manual", "file", "vee"}
    rows: list[dict] = []
    notes: list[str] = []
    parts = {"gateway": (("gateway",), lambda: _dead_letters(conn, scope, start, end, lang),
                         ("шлюзов", "from gateways")),
             "manual": (("manual", "file"), lambda: _manual(conn, scope, start, end, lang, tz),
                        ("ручного ввода и файлов", "by hand and from files")),
             "vee": (("vee",), lambda: _vee(conn, scope, start, end, lang, tz), ("VEE", "VEE"))}
    for kinds, fetch, what in parts.values():
        if not wanted & set(kinds):
            continue
        got = await fetch()
        if len(got) > LIMIT:
            got = got[:LIMIT]
            notes.append(f"Показаны {LIMIT} последних отказов {what[0]}; сузьте период, чтобы увидеть остальные"
                         if lang != "en" else f"The newest {LIMIT} refusals {what[1]} are shown; narrow the period")
        rows += [r for r in got if r["kind"] in wanted]
    rows.sort(key=lambda r: r["at"], reverse=True)
    counts = {k: sum(r["kind"] == k for r in rows) for k in ("gateway", "manual", "file", "vee")}
    summary = (f"Всего: {len(rows)} (шлюзы — {counts['gateway']}, вручную — {counts['manual']}, файлы — "
               f"{counts['file']}, VEE — {counts['vee']})" if lang != "en" else
               f"Total: {len(rows)} (gateways {counts['gateway']}, by hand {counts['manual']}, files "
               f"{counts['file']}, VEE {counts['vee']})")
    source_label = ("Источник", "Source")[lang == "en"]
    sources = {None: ("все", "all"), "gateway": ("шлюзы (приём данных)", "gateways (ingest)"),
               "manual": ("ввод вручную и биллинг", "by hand and billing"), "file": ("файлы", "files"),
               "vee": ("проверка достоверности (VEE)", "validation (VEE)")}
    return Report("rejected", _t(TITLE, lang),
                  [common.period_text(p, lang), await common.org_text(conn, p, lang),
                   (source_label, _t(sources[p.source], lang))],
                  [Section(None, COLUMNS, rows, empty="Отклонённых показаний за период нет" if lang != "en"
                           else "No rejected readings in the period")],
                  [summary, *notes, tz_note(tz, lang)])
