"""Billing API under /api/v1/billing: the readings feed, period snapshots (close,
recalculate), 80020 / hourly / integral files out and in, manual readings and the
acceptance window. Token auth; everything is scoped to the token's organisations
(another organisation answers 404, as if it did not exist).
"""
from __future__ import annotations

import re
from datetime import date
from typing import Annotated

import psycopg
from fastapi import APIRouter, Body, Depends, File, HTTPException, Query, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db, primary_db
from askue.headend.auth.permissions import Action, Principal
from askue.headend.readings import service as reading_service
from askue.headend.readings.window import Window, load_window, set_window
from askue.headend.storage import meta

from . import exporters, feed, importers, snapshots
from .formats import hourly_xlsx
from .formats.csv_out import CONSUMPTION_COLUMNS, CsvWriter
from .formats.errors import ExportFormatError, IncompleteDataError

router = APIRouter(prefix="/billing", tags=["billing"])

MAX_UPLOAD = 20 * 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Auth = Annotated[Principal, Depends(require_principal)]
Conn = Annotated[psycopg.AsyncConnection, Depends(db)]
# the feed's cursor is a position in the primary's commit order
PrimaryConn = Annotated[psycopg.AsyncConnection, Depends(primary_db)]


def _month(text: str) -> date:
    m = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise HTTPException(422, f"month {text!r} must be YYYY-MM, e.g. 2024-03")
    return date(int(m.group(1)), int(m.group(2)), 1)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPException(422, f"day {text!r} must be YYYY-MM-DD") from None


async def _org(conn: psycopg.AsyncConnection, p: Principal, code: str | None) -> exporters.Org:
    if code is None:
        if p.org_ids is not None and len(p.org_ids) == 1:
            cur = await conn.execute("SELECT code FROM organisations WHERE id = %s", (next(iter(p.org_ids)),))
            row = await cur.fetchone()
            code = row[0] if row else None
        if code is None:
            raise HTTPException(422, "pass ?org=<organisation code>")
    try:
        return await exporters.get_org(conn, code, p.org_ids)
    except exporters.ExportError as e:
        raise HTTPException(404, str(e)) from None


async def _upload(f: UploadFile) -> bytes:
    data = await f.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise HTTPException(413, f"file larger than {MAX_UPLOAD // (1024 * 1024)} MB; split it")
    return data


def _format_detail(e: ExportFormatError) -> dict:
    return {"format": e.fmt, "message": "file not accepted, nothing stored", "issues": [i.as_dict() for i in e.issues]}


def _refused_file(e: ExportFormatError) -> JSONResponse:
    """422 with the file's problems, returned rather than raised: the importer recorded the
    refusal on this request's connection, and an exception would roll it back."""
    return JSONResponse({"detail": _format_detail(e)}, status_code=422)


@router.get("/readings")
async def readings_feed(p: Auth, conn: PrimaryConn, cursor: str | None = None,
                        limit: Annotated[int, Query(ge=1, le=feed.MAX_LIMIT)] = 1000,
                        quality: Annotated[list[str] | None, Query()] = None) -> dict:
    """Validated register readings in commit order after `cursor` (omit to start).
    Pass `next_cursor` back to continue; `has_more` says whether to ask again now.
    A reading changed later (re-flagged, estimate replaced) comes again: upsert by
    (meter, obis, ts). Values VEE blocks from billing are not delivered."""
    try:
        c = feed.Cursor.decode(cursor)
    except feed.CursorError as e:
        raise HTTPException(422, str(e)) from None
    page = await feed.fetch_page(conn, c, limit=limit, org_ids=p.org_ids, quality=quality,
                                 exclude_reasons=exporters.blocking_reasons())
    return {"items": [i.as_dict() for i in page.items], "next_cursor": page.next_cursor, "has_more": page.has_more}


@router.get("/periods/{month}")
async def period_snapshot(month: str, p: Auth, conn: Conn, org: str | None = None,
                          format: Annotated[str, Query(pattern="^(json|csv)$")] = "json"):
    """Snapshot per meter and tariff zone: start/end readings, consumption (rollover-
    and exchange-aware, × multiplier), quality, source, estimated flag. Open months are
    computed live; closed months return the frozen figures plus recalculations."""
    m = _month(month)
    o = await _org(conn, p, org)
    tz = await meta.timezone(conn)
    period = await snapshots.get_period(conn, o.id, m)
    recalcs: list[dict] = []
    if period and period["state"] == "closed":
        snaps = [s for _, s in await snapshots.closed_snapshot(conn, period["id"])]
        recalcs = await snapshots.recalculations(conn, period["id"])
    else:
        snaps = await snapshots.period_snapshots(conn, o.id, m, tz=tz)
    if format == "csv":
        w = CsvWriter(CONSUMPTION_COLUMNS)
        for row in snapshots.consumption_rows(snaps, m, tz):
            w.row(row)
        return Response(w.drain(), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="consumption_{o.code}_{m:%Y-%m}.csv"'})
    return {"organisation": o.code, "month": f"{m:%Y-%m}", "state": period["state"] if period else "open",
            "closed_at": period["closed_at"] if period else None, "closed_by": period["closed_by"] if period else None,
            "rows": [s.as_dict() for s in snaps],
            "recalculations": [{**r, "created_at": r["created_at"].isoformat()} for r in recalcs]}


@router.post("/periods/{month}/close")
async def close(month: str, p: Auth, conn: Conn, org: str | None = None) -> dict:
    p.require(Action.BILLING_CLOSE)
    o = await _org(conn, p, org)
    try:
        snaps = await snapshots.close_period(conn, o.id, _month(month), p.name)
    except snapshots.PeriodError as e:
        raise HTTPException(409, str(e)) from None
    return {"organisation": o.code, "month": month, "state": "closed", "rows": len(snaps)}


class RecalcIn(BaseModel):
    reason: str = Field("data changed after closing", min_length=3, max_length=500)


@router.post("/periods/{month}/recalculate")
async def recalculate(month: str, p: Auth, conn: Conn, org: str | None = None,
                      body: RecalcIn = Body(default_factory=RecalcIn)) -> dict:
    p.require(Action.BILLING_CLOSE)
    o = await _org(conn, p, org)
    try:
        made = await snapshots.recalculate(conn, o.id, _month(month), p.name, body.reason)
    except snapshots.PeriodError as e:
        raise HTTPException(409, str(e)) from None
    return {"organisation": o.code, "month": month, "recalculations": made}


@router.get("/80020/{day}")
async def get_80020(day: str, p: Auth, conn: Conn, org: str | None = None, allow_incomplete: bool = False,
                    sender_inn: str | None = None) -> Response:
    o = await _org(conn, p, org)
    try:
        name, body = await exporters.export_80020(conn, o, _day(day), sender_inn=sender_inn,
                                                  allow_incomplete=allow_incomplete)
    except IncompleteDataError as e:
        raise HTTPException(409, {"message": str(e), "missing": e.missing[:500],
                                  "fix": "wait for the data / VEE estimates, or pass allow_incomplete=true "
                                         "to leave such channels out"}) from None
    except exporters.ExportError as e:
        raise HTTPException(404, str(e)) from None
    return Response(body, media_type="application/xml; charset=windows-1251",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/80020")
async def post_80020(p: Auth, conn: Conn, file: Annotated[UploadFile, File()]) -> dict:
    p.require(Action.BILLING_IMPORT)
    data = await _upload(file)
    try:
        rep = await importers.import_80020(conn, data, org_ids=p.org_ids, author=p.name,
                                           file_name=file.filename if file.filename and
                                           file.filename.lower().startswith("80020_") else None)
    except ExportFormatError as e:
        return _refused_file(e)
    return {"day": rep.file_day, "sender_inn": rep.sender_inn, "points": rep.points, "inserted": rep.inserted,
            "kept_existing": rep.kept_existing}


@router.get("/hourly/{meter}/{month}")
async def get_hourly(meter: str, month: str, p: Auth, conn: Conn) -> Response:
    try:
        prof = await exporters.hourly_profile(conn, meter, _month(month), org_ids=p.org_ids)
    except exporters.ExportError as e:
        raise HTTPException(404, str(e)) from None
    return Response(hourly_xlsx.write_hourly_xlsx([prof]), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="hourly_{meter}_{month}.xlsx"'})


@router.post("/hourly/{meter}")
async def post_hourly(meter: str, p: Auth, conn: Conn, file: Annotated[UploadFile, File()]) -> dict:
    """Load a filled-in hourly profile (cabinet layout) as hourly intervals of the meter."""
    p.require(Action.BILLING_IMPORT)
    ids = None if p.org_ids is None else sorted(p.org_ids)
    seen = await (await conn.execute(
        "SELECT 1 FROM meters WHERE code = %s AND (%s::bigint[] IS NULL OR org_id = ANY(%s::bigint[]))",
        (meter, ids, ids))).fetchone()
    if seen is None:  # unknown, or another organisation's: the same answer
        raise HTTPException(404, f"meter {meter!r} not found")
    data = await _upload(file)
    try:
        rep = await importers.import_hourly(conn, data, meter, org_ids=p.org_ids, author=p.name)
    except ExportFormatError as e:
        return _refused_file(e)
    return rep.__dict__


@router.get("/integral-template/{month}")
async def get_integral_template(month: str, p: Auth, conn: Conn, org: str | None = None) -> Response:
    o = await _org(conn, p, org)
    body = await exporters.integral_template(conn, o, _month(month))
    return Response(body, media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="integral_{o.code}_{month}.xlsx"'})


@router.post("/integral")
async def post_integral(p: Auth, conn: Conn, file: Annotated[UploadFile, File()], partial: bool = False,
                        confirm: bool = False, dry_run: bool = False) -> dict:
    p.require(Action.READINGS_ENTER)
    data = await _upload(file)
    try:
        results = await importers.import_integral(conn, data, org_ids=p.org_ids, author=p.name, confirm=confirm,
                                                  partial=partial, dry_run=dry_run)
    except ExportFormatError as e:
        return _refused_file(e)
    return {"rows": [{"row": r.row, "status": r.status, "meter": r.reading.meter_number if r.reading else None,
                      "obis": r.reading.obis if r.reading and r.status != "error" else None,
                      "message": r.message, "issues": [i.as_dict() for i in r.issues]} for r in results],
            "stored": sum(1 for r in results if r.status == "ok") if not dry_run else 0}


class ManualIn(BaseModel):
    meter: str = Field(min_length=1, max_length=64)
    obis: str = Field("1.0.1.8.0.255", pattern=r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
    value: float = Field(ge=0, allow_inf_nan=False)
    ts: str | None = None
    consumer: bool = False
    comment: str = Field("", max_length=500)


@router.post("/manual-readings")
async def post_manual(p: Auth, conn: Conn, readings: list[ManualIn], confirm: bool = False,
                      dry_run: bool = False) -> dict:
    """Manual or consumer-reported readings, each checked against the acceptance
    window and the expected value (shown back when confirmation is needed)."""
    from datetime import datetime

    p.require(Action.READINGS_ENTER)
    items = []
    for r in readings:
        ts = None
        if r.ts:
            try:
                ts = datetime.fromisoformat(r.ts)
            except ValueError:
                raise HTTPException(422, f"ts {r.ts!r} is not ISO 8601 with offset") from None
            if ts.tzinfo is None:
                raise HTTPException(422, f"ts {r.ts!r} needs a UTC offset, e.g. 2024-03-25T10:00:00+03:00")
        items.append(reading_service.ReadingInput(r.meter, r.obis, r.value, ts, r.consumer, r.comment))
    res = await reading_service.submit(conn, p, items, confirm=confirm, dry_run=dry_run)
    return {"results": [r.as_dict() for r in res]}


class WindowIn(BaseModel):
    open_day: int = Field(15, ge=1, le=28)
    close_day: int = Field(5, ge=1, le=28)
    max_age_days: int = Field(10, ge=0, le=62)
    tolerance: float = Field(3.0, gt=0, le=1000)


@router.get("/reading-window")
async def get_window(p: Auth, conn: Conn, org: str | None = None) -> dict:
    o = await _org(conn, p, org)
    w = await load_window(conn, o.id)
    return {"organisation": o.code, **w.__dict__}


@router.put("/reading-window")
async def put_window(p: Auth, conn: Conn, body: WindowIn, org: str | None = None) -> dict:
    p.require(Action.BILLING_WINDOW)
    o = await _org(conn, p, org)
    await set_window(conn, o.id, Window(body.open_day, body.close_day, body.max_age_days, body.tolerance))
    return {"organisation": o.code, **body.model_dump()}
