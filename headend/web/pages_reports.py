"""Reports on the operators' pages: the list, each report with its form (a bad value is
answered next to its field and no report is made), its table, and CSV / Excel / PDF / print.
The reports themselves are `askue.headend.reports`; this module reads the query and renders."""
from __future__ import annotations

import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response

from askue.headend.auth import audit
from askue.headend.errors import Invalid
from askue.headend.reports import REPORTS, documents, run, spec
from askue.headend.reports.model import cell
from askue.headend.reports.params import GROUPS, RESOURCES, SOURCES
from askue.headend.web.deps import WebUser, conn, html_errors, render, web_user
from askue.headend.web.queries import visible_orgs

router = APIRouter()
FORM_KEYS = ("from", "to", "org", "group", "source", "resource", "horizon", "unknown")


@router.get("/reports")
@html_errors
async def reports_index(request: Request, w: WebUser = Depends(web_user)):
    return render(request, "reports.html", {"reports": list(REPORTS.values())}, w)


async def _page(request: Request, w: WebUser, c: psycopg.AsyncConnection, name: str, *, export: str | None = None):
    s = spec(name)
    raw = {k: v for k, v in request.query_params.items() if k in FORM_KEYS}
    ctx = {"spec": s, "form": raw, "errors": {}, "report": None, "orgs": await visible_orgs(c, w.principal),
           "groups": GROUPS, "sources": SOURCES, "resources": RESOURCES,
           "qs": "&".join(f"{k}={v}" for k, v in request.query_params.multi_items() if k in FORM_KEYS),
           "cell": lambda col, v: cell(col, v, w.lang, w.tz)}
    try:
        report = await run(c, w.principal, name, raw, w.lang, w.tz)
    except Invalid as e:
        ctx["errors"] = {e.field: e.text(w.lang)}
        return render(request, "report.html", ctx, w, status_code=422)
    if export:
        body, media = documents.render(report, export, w.lang, w.tz)
        await audit.record(c, w.principal, "report_export", "report", name, new={"format": export, **raw})
        return Response(body, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{name}_{report.generated:%Y%m%d_%H%M}.{export}"'})
    return render(request, "report.html", ctx | {"report": report}, w)


@router.get("/reports/{name}")
@html_errors
async def report_page(request: Request, name: str, w: WebUser = Depends(web_user),
                      c: psycopg.AsyncConnection = Depends(conn)):
    return await _page(request, w, c, name)


@router.get("/reports/{name}/export")
@html_errors
async def report_export(request: Request, name: str, format: str = Query("csv", pattern="^(csv|xlsx|pdf)$"),
                        w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    return await _page(request, w, c, name, export=format)
