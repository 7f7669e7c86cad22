"""Login (rate limited, audited), logout, language switch."""
from __future__ import annotations

import hmac
import secrets

import psycopg
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from askue.headend.auth import audit, ratelimit, sessions, users
from askue.headend.web.deps import (
    LANG_COOKIE,
    WebUser,
    base_path,
    check_csrf,
    client_ip,
    conn,
    render,
    web_user,
)
from askue.headend.web.i18n import LANGS, t

router = APIRouter()
LOGIN_CSRF_COOKIE = "askue_login_csrf"


def _safe_next(request: Request, nxt: str | None) -> str:
    base = base_path(request)
    # only paths inside the pages: never an absolute URL (open redirect)
    if nxt and nxt.startswith(base + "/") and not nxt.startswith("//") and "\\" not in nxt:
        return nxt
    return base + "/"


def _login_page(request: Request, nxt: str | None, error: str | None = None, status: int = 200,
                login: str = ""):
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", {"next": nxt or "", "error": error, "login_csrf": token, "login": login},
                  status_code=status)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path=base_path(request))
    return resp


@router.get("/login", name="web_login")
async def login_form(request: Request, next: str | None = None):
    return _login_page(request, next)


@router.post("/login")
async def login(request: Request, login: str = Form(..., max_length=200), password: str = Form(..., max_length=1000),
                csrf: str = Form(""), next: str | None = Form(None), c: psycopg.AsyncConnection = Depends(conn)):
    lang = request.cookies.get(LANG_COOKIE) if request.cookies.get(LANG_COOKIE) in LANGS else "ru"
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not csrf or not hmac.compare_digest(csrf, cookie):
        return _login_page(request, next, t("csrf_failed", lang), 403, login)
    ip = client_ip(request)
    verdict = await ratelimit.check(c, login, ip)
    if not verdict.allowed:
        await audit.record(c, login, "login_blocked", "user", login, comment=verdict.reason, ip=ip)
        resp = _login_page(request, next, t("login_locked", lang, s=verdict.retry_after_s), 429, login)
        resp.headers["Retry-After"] = str(verdict.retry_after_s)
        return resp
    user = await users.authenticate(c, login, password)
    await ratelimit.note(c, login, ip, user is not None)
    if user is None:
        await audit.record(c, login, "login_failed", "user", login, ip=ip)
        return _login_page(request, next, t("login_failed", lang), 401, login)
    token = await sessions.create(c, user, ip, request.headers.get("user-agent"))
    await audit.record(c, user.login, "login", "user", user.login, ip=ip)
    resp = RedirectResponse(_safe_next(request, next), status_code=303)
    resp.set_cookie(sessions.COOKIE, token, httponly=True, samesite="lax", path=base_path(request),
                    secure=request.url.scheme == "https", max_age=int(sessions.LIFETIME.total_seconds()))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path=base_path(request))
    return resp


@router.post("/logout")
async def logout(request: Request, csrf: str = Form(""), w: WebUser = Depends(web_user),
                 c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    await sessions.end(c, request.cookies.get(sessions.COOKIE))
    await audit.record(c, w.principal, "logout", "user", w.user.login)
    resp = RedirectResponse(base_path(request) + "/login", status_code=303)
    resp.delete_cookie(sessions.COOKIE, path=base_path(request))
    return resp
