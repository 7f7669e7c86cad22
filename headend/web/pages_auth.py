"""Login (password, then the code of a user with the second factor), logout. The
steps, their rate limit and audit are `askue.headend.auth.login`'s; this module reads
forms and sets cookies. Forms shown before login carry a double-submit CSRF token
(`public_page`, `public_csrf_ok`), also used by the password reset pages."""
from __future__ import annotations

import hmac
import secrets

import psycopg
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from askue.headend.auth import audit, sessions
from askue.headend.auth import login as logins
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
from askue.headend.web.i18n import LANGS, t, wait

router = APIRouter()
LOGIN_CSRF_COOKIE = "askue_login_csrf"


def _safe_next(request: Request, nxt: str | None) -> str:
    base = base_path(request)
    # only paths inside the pages: never an absolute URL (open redirect)
    if nxt and nxt.startswith(base + "/") and not nxt.startswith("//") and "\\" not in nxt:
        return nxt
    return base + "/"


def public_page(request: Request, template: str, ctx: dict, status: int = 200):
    """A page shown before login, its forms protected by a double-submit CSRF token."""
    token = secrets.token_urlsafe(24)
    resp = render(request, template, ctx | {"login_csrf": token}, status_code=status)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path=base_path(request))
    return resp


def public_csrf_ok(request: Request, token: str | None) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    return bool(token) and hmac.compare_digest(token, cookie)


def public_lang(request: Request) -> str:
    q = request.query_params.get("lang")
    c = request.cookies.get(LANG_COOKIE)
    return q if q in LANGS else c if c in LANGS else "ru"


def _login_page(request: Request, nxt: str | None, error: str | None = None, status: int = 200,
                login: str = ""):
    return public_page(request, "login.html", {"next": nxt or "", "error": error, "login": login}, status)


def _code_page(request: Request, nxt: str | None, error: str | None = None, status: int = 200):
    return public_page(request, "login_code.html", {"next": nxt or "", "error": error}, status)


def _locked(resp, retry_after_s: int):
    resp.headers["Retry-After"] = str(retry_after_s)
    return resp


def _logged_in(request: Request, token: str, nxt: str | None) -> RedirectResponse:
    resp = RedirectResponse(_safe_next(request, nxt), status_code=303)
    resp.set_cookie(sessions.COOKIE, token, httponly=True, samesite="lax", path=base_path(request),
                    secure=request.url.scheme == "https", max_age=int(sessions.LIFETIME.total_seconds()))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path=base_path(request))
    resp.delete_cookie(logins.CHALLENGE_COOKIE, path=base_path(request))
    return resp


@router.get("/login", name="web_login")
async def login_form(request: Request, next: str | None = None):
    return _login_page(request, next)


@router.post("/login")
async def login(request: Request, login: str = Form(..., max_length=200), password: str = Form(..., max_length=1000),
                csrf: str = Form(""), next: str | None = Form(None), c: psycopg.AsyncConnection = Depends(conn)):
    lang = public_lang(request)
    if not public_csrf_ok(request, csrf):
        return _login_page(request, next, t("csrf_failed", lang), 403, login)
    out = await logins.with_password(c, login, password, client_ip(request), request.headers.get("user-agent"))
    if out.state == "locked":
        refusal = t("login_locked", lang, s=wait(out.retry_after_s, lang))
        return _locked(_login_page(request, next, refusal, 429, login), out.retry_after_s)
    if out.state == "wrong":
        return _login_page(request, next, t("login_failed", lang), 401, login)
    if out.state == "code":
        resp = _code_page(request, next)
        resp.set_cookie(logins.CHALLENGE_COOKIE, out.token, httponly=True, samesite="strict", path=base_path(request),
                        secure=request.url.scheme == "https", max_age=int(logins.CHALLENGE_LIFETIME.total_seconds()))
        return resp
    return _logged_in(request, out.token, next)


@router.post("/login/code")
async def login_code(request: Request, code: str = Form("", max_length=100), csrf: str = Form(""),
                     next: str | None = Form(None), c: psycopg.AsyncConnection = Depends(conn)):
    """The second step: a code from the authenticator app, or a recovery code."""
    lang = public_lang(request)
    if not public_csrf_ok(request, csrf):
        return _code_page(request, next, t("csrf_failed", lang), 403)
    out = await logins.with_code(c, request.cookies.get(logins.CHALLENGE_COOKIE), code, client_ip(request),
                                 request.headers.get("user-agent"))
    if out.state == "expired":
        return _login_page(request, next, t("code_expired", lang), 401)
    if out.state == "locked":
        resp = _login_page(request, next, t("login_locked", lang, s=wait(out.retry_after_s, lang)), 429)
        resp.delete_cookie(logins.CHALLENGE_COOKIE, path=base_path(request))
        return _locked(resp, out.retry_after_s)
    if out.state == "wrong":
        return _code_page(request, next, t("code_wrong", lang), 401)
    return _logged_in(request, out.token, next)


@router.post("/logout")
async def logout(request: Request, csrf: str = Form(""), w: WebUser = Depends(web_user),
                 c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    await sessions.end(c, request.cookies.get(sessions.COOKIE))
    await audit.record(c, w.principal, "logout", "user", w.user.login)
    resp = RedirectResponse(base_path(request) + "/login", status_code=303)
    resp.delete_cookie(sessions.COOKIE, path=base_path(request))
    return resp
