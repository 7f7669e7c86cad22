"""Reports over HTTP (under /api/v1): the same services and documents as the pages."""
from __future__ import annotations

import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response

from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db
from askue.headend.auth import audit
from askue.headend.auth.permissions import Principal
from askue.headend.reports import REPORTS, documents, run
from askue.headend.reports.model import Report
from askue.headend.storage import meta

router = APIRouter(tags=["reports"])


@router.get("/reports")
async def list_reports(lang: str = Query("ru", pattern="^(ru|en)$"),
                       principal: Principal = Depends(require_principal)) -> dict:
    return {"items": [{"name": s.name, "title": s.title_in(lang), "description": s.description[lang == "en"],
                       "fields": list(s.fields)} for s in REPORTS.values()]}


def as_json(r: Report) -> dict:
    return {"name": r.name, "title": r.title, "generated": r.generated,
            "selection": [{"what": w, "value": v} for w, v in r.selection],
            "sections": [{"title": s.title, "columns": [{"key": c.key, "title": c.ru, "title_en": c.en,
                                                         "kind": c.kind} for c in s.columns],
                          "rows": s.rows, "total": s.total} for s in r.sections],
            "notes": r.notes}


@router.get("/reports/{name}")
async def get_report(name: str, request: Request, format: str = Query("json", pattern="^(json|csv|xlsx|pdf)$"),
                     lang: str = Query("ru", pattern="^(ru|en)$"), principal: Principal = Depends(require_principal),
                     conn: psycopg.AsyncConnection = Depends(db)):
    """A report for `from`, `to` (dates), `org`, `group` (house, gateway, organisation), `source` (gateway,
    manual, file, vee), `resource`, `horizon` (days), `unknown` — each report reads the ones it needs
    (GET /reports lists them). Another organisation answers 422 on `org`, as not found."""
    tz = await meta.timezone(conn)
    report = await run(conn, principal, name, request.query_params, lang, tz)
    if format == "json":
        return as_json(report)
    body, media = documents.render(report, format, lang, tz)
    await audit.record(conn, principal, "report_export", "report", name, new={"format": format})
    return Response(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{name}_{report.generated:%Y%m%d_%H%M}.{format}"'})
