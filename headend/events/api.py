"""Abnormal events over HTTP (under /api/v1): list, counts, export, one event,
acknowledge, resolve. A thin adapter over events/service.py: every endpoint needs a
token; another organisation's event answers 404; acting needs a role that may act."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, Field

from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db
from askue.headend.api.pagination import decode_cursor, page
from askue.headend.auth.permissions import Principal
from askue.headend.events import documents, service
from askue.headend.pdf import FontMissing
from askue.headend.storage import meta

router = APIRouter(tags=["events"])
Limit = Annotated[int, Query(ge=1, le=1000)]
Lang = Literal["ru", "en"]


def event_filter(
    organisation: str | None = Query(None, description="organisation code"),
    kind: list[str] | None = Query(None, description="event kind(s), e.g. no_contact, reverse_reading"),
    state: list[service.State] | None = Query(None, description="open / acknowledged / resolved"),
    start: datetime | None = Query(None, alias="from", description="events observed at or after (ISO 8601)"),
    end: datetime | None = Query(None, alias="to", description="events observed before (ISO 8601)"),
    meter: str | None = Query(None, description="meter code"),
    account: str | None = Query(None, description="account (ЛС) code"),
    site: str | None = Query(None, description="house (site) code"),
    severity: Literal["info", "warning", "critical"] | None = None,
    show_resolved: bool = Query(False, description="include resolved events (ignored when `state` is given)"),
) -> service.EventFilter:
    return service.EventFilter(organisation=organisation, kind=tuple(kind or ()), state=tuple(state or ()),
                               start=start, end=end, meter=meter, account=account, site=site, severity=severity,
                               show_resolved=show_resolved)


@router.get("/events")
async def list_events(f: service.EventFilter = Depends(event_filter), lang: Lang = "ru", cursor: str | None = None,
                      limit: Limit = 100, principal: Principal = Depends(require_principal),
                      conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Abnormal events (нештатные ситуации), newest first; resolved ones only with show_resolved.
    Each has `title` and `description` (a sentence) in `lang`."""
    after = decode_cursor(cursor, 1)
    rows = await service.list_events(conn, principal, f, limit=limit + 1, before_id=int(after[0]) if after else None)
    tz = await meta.timezone(conn)
    return page([service.view(r, lang, tz) for r in rows], limit, lambda r: [r["id"]])


@router.get("/events/counts")
async def event_counts(f: service.EventFilter = Depends(event_filter), principal: Principal = Depends(require_principal),
                       conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Counts per kind and state (for dashboards)."""
    return await service.count_events(conn, principal, f)


@router.get("/events/export")
async def export_events(f: service.EventFilter = Depends(event_filter),
                        format: Literal["csv", "xlsx", "pdf"] = "csv", lang: Lang = "ru",
                        principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> Response:
    """The filtered list as CSV, XLSX or PDF (at most 50 000 rows)."""
    rows = await service.list_events(conn, principal, f, limit=service.EXPORT_MAX)
    tz = await meta.timezone(conn)
    body, media = document(format, [service.view(r, lang, tz) for r in rows], lang, tz)
    stamp = datetime.now(tz).strftime("%Y%m%d_%H%M")
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="events_{stamp}.{format}"'})


def document(format: str, views: list[dict], lang: str, tz) -> tuple[bytes, str]:
    """(body, media type) of an event list document."""
    if format == "csv":
        return documents.to_csv(views, lang, tz), "text/csv; charset=utf-8"
    if format == "xlsx":
        return documents.to_xlsx(views, lang, tz), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    try:
        return documents.to_pdf(views, lang, tz), "application/pdf"
    except FontMissing as e:
        raise HTTPException(503, str(e)) from None


@router.get("/events/{event_id}")
async def get_event(event_id: int, lang: Lang = "ru", principal: Principal = Depends(require_principal),
                    conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    return service.view(await service.get_event(conn, principal, event_id), lang, await meta.timezone(conn))


class Comment(BaseModel):
    comment: str = Field("", max_length=2000)


class ResolveBody(BaseModel):
    comment: str = Field(..., min_length=1, max_length=2000, description="what was done (required)")


@router.post("/events/{event_id}/acknowledge")
async def acknowledge(event_id: int, body: Comment | None = None, principal: Principal = Depends(require_principal),
                      conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """open → acknowledged (who and when recorded; optional comment)."""
    ev = await service.transition(conn, principal, event_id, "acknowledged", body.comment if body else "")
    return service.view(ev, "ru", await meta.timezone(conn))


@router.post("/events/{event_id}/resolve")
async def resolve(event_id: int, body: ResolveBody, principal: Principal = Depends(require_principal),
                  conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """open/acknowledged → resolved with a comment."""
    ev = await service.transition(conn, principal, event_id, "resolved", body.comment)
    return service.view(ev, "ru", await meta.timezone(conn))
