"""Map, gateways, users and API tokens, action history, static assets."""
from __future__ import annotations

import asyncio
import mimetypes
from datetime import datetime
from pathlib import Path

import psycopg
from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from askue.headend.api.auth import create_token
from askue.headend.auth import audit, users
from askue.headend.auth.permissions import GRANTABLE, Action
from askue.headend.events.describe import zone_label
from askue.headend.storage.queries import gateways as gq
from askue.headend.web import queries as wq
from askue.headend.web import tiles
from askue.headend.web.deps import (
    WebUser,
    base_path,
    check_csrf,
    conn,
    fmt_dt,
    html_errors,
    render,
    web_user,
)

router = APIRouter()
STATIC = Path(__file__).parent / "static"


@router.get("/static/{path:path}", name="web_static")
async def static(path: str):
    f = (STATIC / path).resolve()
    if not f.is_relative_to(STATIC.resolve()) or not f.is_file():
        raise HTTPException(404, "no such asset")
    return FileResponse(f, media_type=mimetypes.guess_type(f.name)[0] or "application/octet-stream",
                        headers={"Cache-Control": "max-age=3600"})


@router.get("/map")
@html_errors
async def map_page(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    data = await wq.map_markers(c, w.principal, datetime.now(w.tz))
    for m in data["markers"]:  # the popup's time, on the organisation's clock
        m["last_contact_text"] = fmt_dt(datetime.fromisoformat(m["last_contact"]), w.tz) if m["last_contact"] else ""
    vendor = (STATIC / "vendor" / "leaflet" / "leaflet.js").is_file()
    layer = tiles.base_layer(request.app.state.settings, base_path(request))
    return render(request, "map.html", {"data": data, "buckets": wq.MAP_BUCKETS, "vendor": vendor, "layer": layer,
                                        "zone": zone_label(w.tz, lang=w.lang, word=False)}, w,
                  img_src=(layer.origin,) if layer.origin else ())


@router.get("/tiles/{z}/{x}/{y}", name="web_tile")
async def tile(request: Request, z: int, x: int, y: str, w: WebUser = Depends(web_user)):
    """A tile of the offline base map (map_tiles_dir or map_mbtiles); `y` may carry an extension.
    Signed-in users only, like every page: the map's browser sends its session cookie."""
    settings = request.app.state.settings
    y_num = y.rsplit(".", 1)[0] if "." in y else y
    if not y_num.isdigit() or not tiles.valid_tile(z, x, int(y_num)):
        raise HTTPException(404, "no such tile")
    try:
        src = tiles.offline_source(settings.map_tiles_dir, settings.map_mbtiles)
    except tiles.TileSourceError as e:
        raise HTTPException(404, str(e)) from None
    found = await asyncio.to_thread(src.get, z, x, int(y_num)) if src else None
    if found is None:
        raise HTTPException(404, "no such tile")
    data, media = found
    return Response(data, media_type=media, headers={"Cache-Control": "max-age=86400"})


@router.get("/map/data")
async def map_data(w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    return JSONResponse(await wq.map_markers(c, w.principal, datetime.now(w.tz)))


@router.get("/gateways")
@html_errors
async def gateways(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    rows = await gq.list_gateways(c, w.principal.scope, None, 5000)
    return render(request, "gateways.html", {"rows": rows}, w)


@router.get("/users")
@html_errors
async def users_page(request: Request, w: WebUser = Depends(web_user),
                     c: psycopg.AsyncConnection = Depends(conn)):
    rows = await users.managed(c, w.principal)
    orgs = await wq.visible_orgs(c, w.principal)
    return render(request, "users.html", {"rows": rows, "orgs": orgs, "roles": GRANTABLE[w.user.role],
                                          "new_token": None}, w)


@router.post("/users")
@html_errors
async def users_create(request: Request, login: str = Form(...), password: str = Form(...), role: str = Form(...),
                       name: str = Form(""), orgs: list[str] = Form([]), csrf: str = Form(""),
                       w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    await users.create_by(c, w.principal, login, password, role, orgs, name or None)
    return RedirectResponse(f"{base_path(request)}/users", status_code=303)


@router.post("/users/{login}/active")
@html_errors
async def users_active(request: Request, login: str, active: bool = Form(...), csrf: str = Form(""),
                       w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    await users.set_active_by(c, w.principal, login, active)
    return RedirectResponse(f"{base_path(request)}/users", status_code=303)


@router.post("/tokens")
@html_errors
async def token_create(request: Request, name: str = Form(...), org: str = Form(""), csrf: str = Form(""),
                       w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    """A billing API token (admin only); shown once on the page that answers."""
    check_csrf(w, csrf)
    w.principal.require(Action.TOKENS_CREATE)

    def _make(sync_conn: psycopg.Connection) -> str:
        return create_token(sync_conn, name.strip(), "billing", [org] if org else None)

    dsn = request.app.state.settings.dsn if hasattr(request.app.state, "settings") else None
    if dsn is None:
        raise HTTPException(503, "settings are missing")
    import asyncio

    def _run() -> str:
        with psycopg.connect(dsn, autocommit=True) as sc:
            return _make(sc)
    try:
        token = await asyncio.to_thread(_run)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    await audit.record(c, w.principal, "token_create", "api_token", name, new={"role": "billing", "org": org or None})
    rows = await users.managed(c, w.principal)
    orgs = await wq.visible_orgs(c, w.principal)
    return render(request, "users.html", {"rows": rows, "orgs": orgs, "roles": GRANTABLE[w.user.role],
                                          "new_token": token}, w)


@router.get("/history")
@html_errors
async def history(request: Request, actor: str | None = None, before: int | None = None,
                  w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    """Own history; an admin sees anyone's, an org admin its organisations' users'."""
    rows = await users.history_for(c, w.principal, actor, before)
    return render(request, "history.html", {"rows": rows, "actor": actor or "", "changed": False}, w)
