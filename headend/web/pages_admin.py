"""Map, gateways, users and API tokens, action history, static assets."""
from __future__ import annotations

import mimetypes
from datetime import datetime
from pathlib import Path

import psycopg
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from askue.headend.api.auth import create_token
from askue.headend.auth import audit, users
from askue.headend.storage.queries import gateways as gq
from askue.headend.web import queries as wq
from askue.headend.web.deps import (
    WebUser,
    base_path,
    check_csrf,
    conn,
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
    vendor = (STATIC / "vendor" / "leaflet" / "leaflet.js").is_file()
    return render(request, "map.html", {"data": data, "buckets": wq.MAP_BUCKETS, "vendor": vendor}, w)


@router.get("/map/data")
async def map_data(w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    return JSONResponse(await wq.map_markers(c, w.principal, datetime.now(w.tz)))


@router.get("/gateways")
@html_errors
async def gateways(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    rows = await gq.list_gateways(c, w.principal.scope, None, 5000)
    return render(request, "gateways.html", {"rows": rows}, w)


def _manager(w: WebUser) -> None:
    if w.user.role not in ("admin", "org_admin"):
        raise HTTPException(403, "only admin and org_admin manage users")


@router.get("/users")
@html_errors
async def users_page(request: Request, w: WebUser = Depends(web_user),
                     c: psycopg.AsyncConnection = Depends(conn)):
    _manager(w)
    rows = await users.list_users(c, w.user.org_ids)
    orgs = await wq.visible_orgs(c, w.principal)
    roles = users.USER_ROLES if w.user.role == "admin" else ("org_admin", "viewer")
    return render(request, "users.html", {"rows": rows, "orgs": orgs, "roles": roles, "new_token": None}, w)


@router.post("/users")
@html_errors
async def users_create(request: Request, login: str = Form(...), password: str = Form(...), role: str = Form(...),
                       name: str = Form(""), orgs: list[str] = Form([]), csrf: str = Form(""),
                       w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    _manager(w)
    visible = {o["code"]: o["id"] for o in await wq.visible_orgs(c, w.principal)}
    bad = [o for o in orgs if o not in visible]
    if bad:
        raise HTTPException(404, f"organisation(s) {', '.join(bad)} not found")
    if w.user.role != "admin":  # an org admin creates users of its own organisations only
        if role not in ("org_admin", "viewer"):
            raise HTTPException(403, "an organisation admin creates org_admin or viewer users")
        if not orgs:
            orgs = sorted(visible)
    if role == "viewer" and w.user.role != "admin" and not orgs:
        raise HTTPException(422, "choose an organisation")
    org_ids = [visible[o] for o in orgs] or None
    try:
        u = await users.create_user_async(c, login.strip(), password, role, org_ids, name or None)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    await audit.record(c, w.principal, "user_create", "user", u.login, new={"role": role, "orgs": orgs})
    return RedirectResponse(f"{base_path(request)}/users", status_code=303)


@router.post("/users/{login}/active")
@html_errors
async def users_active(request: Request, login: str, active: bool = Form(...), csrf: str = Form(""),
                       w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    _manager(w)
    target = next((u for u in await users.list_users(c, w.user.org_ids) if u["login"] == login), None)
    if target is None:
        raise HTTPException(404, f"user {login!r} not found")
    if target["id"] == w.user.id:
        raise HTTPException(409, "you cannot deactivate yourself")
    await users.set_active(c, target["id"], active)
    await audit.record(c, w.principal, "user_activate" if active else "user_deactivate", "user", login,
                       old={"active": target["active"]}, new={"active": active})
    return RedirectResponse(f"{base_path(request)}/users", status_code=303)


@router.post("/tokens")
@html_errors
async def token_create(request: Request, name: str = Form(...), org: str = Form(""), csrf: str = Form(""),
                       w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    """A billing API token (admin only); shown once on the page that answers."""
    check_csrf(w, csrf)
    if w.user.role != "admin":
        raise HTTPException(403, "only an admin creates API tokens")

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
    rows = await users.list_users(c, w.user.org_ids)
    orgs = await wq.visible_orgs(c, w.principal)
    return render(request, "users.html", {"rows": rows, "orgs": orgs, "roles": users.USER_ROLES,
                                          "new_token": token}, w)


@router.get("/history")
@html_errors
async def history(request: Request, actor: str | None = None, before: int | None = None,
                  w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    """Own history; an admin sees anyone's, an org admin its organisations' users'."""
    if w.user.role == "admin":
        actors = [actor] if actor else None
    elif w.user.role == "org_admin":
        mine = [u["login"] for u in await users.list_users(c, w.user.org_ids)]
        if actor and actor not in mine:
            raise HTTPException(404, f"user {actor!r} not found")
        actors = [actor] if actor else mine
    else:
        actors = [w.user.login]
    rows = await audit.history(c, actors, before_id=before)
    return render(request, "history.html", {"rows": rows, "actor": actor or "", "changed": False}, w)


@router.post("/password")
@html_errors
async def change_password(request: Request, old: str = Form(...), new: str = Form(...), csrf: str = Form(""),
                          w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    """Change one's own password: the old one is required; other sessions of the user end."""
    check_csrf(w, csrf)
    if await users.authenticate(c, w.user.login, old) is None:
        raise HTTPException(403, "Текущий пароль неверен" if w.lang == "ru" else "The current password is wrong")
    try:
        await users.set_password(c, w.user, new)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    from askue.headend.auth import sessions

    current = sessions._hash(request.cookies.get(sessions.COOKIE) or "")
    await c.execute("DELETE FROM web_sessions WHERE user_id = %s AND token_hash <> %s", (w.user.id, current))
    await audit.record(c, w.principal, "password_change", "user", w.user.login)
    rows = await audit.history(c, [w.user.login])
    return render(request, "history.html", {"rows": rows, "actor": "", "changed": True}, w)
