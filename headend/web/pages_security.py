"""«Безопасность»: one's own account for every role (e-mail for resets, password,
sessions with «Завершить», the second factor), and the password reset pages shown
before login. The work is `askue.headend.auth.account` and `auth.reset`'s; this module
reads forms, shows bad input next to its field, and renders."""
from __future__ import annotations

import psycopg
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from askue.headend.auth import account, reset, sessions
from askue.headend.errors import Invalid
from askue.headend.notify.mail import MailSettings
from askue.headend.web.deps import (
    WebUser,
    base_path,
    check_csrf,
    client_ip,
    conn,
    html_errors,
    render,
    web_user,
)
from askue.headend.web.i18n import t, wait
from askue.headend.web.pages_auth import public_csrf_ok, public_lang, public_page

router = APIRouter()
_DONE = ("email", "password", "session", "others", "totp_off")  # what ?done= may say after a change
# The page frame per role (the templates extend `layout`): a customer's is the cabinet's.
LAYOUTS: dict[str, str] = {"customer": "cabinet_base.html"}

_BROWSERS = (("YaBrowser", "Яндекс Браузер"), ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("Linux", "Linux"))


def device(user_agent: str | None, lang: str) -> str:
    """«Chrome, Windows» from a User-Agent header (the raw header is in the title)."""
    ua = user_agent or ""
    browser = next((name for key, name in _BROWSERS if key in ua), "")
    if "HeadlessChrome" in ua:
        browser = "Chrome (headless)"
    system = next((name for key, name in _SYSTEMS if key in ua), "")
    text = ", ".join(x for x in (browser, system) if x)
    return text or (ua[:40] if ua else t("sec_unknown_device", lang))


def _mail(request: Request) -> MailSettings | None:
    return MailSettings.from_settings(request.app.state.settings)


def _errors(e: Invalid, lang: str) -> dict[str, str]:
    return {e.field: e.text(lang)}


async def _page(request: Request, w: WebUser, c: psycopg.AsyncConnection, *, errors: dict | None = None,
                flash: str | None = None, codes: list[str] | None = None, email: str | None = None,
                status_code: int = 200):
    sec = await account.overview(c, w.user, request.cookies.get(sessions.COOKIE))
    mail_ready = request.app.state.settings.smtp_host is not None
    return render(request, "security.html", {
        "sec": sec, "errors": errors or {}, "flash": flash, "codes": codes, "mail_ready": mail_ready,
        "email": sec.email if email is None else email,
        "device": lambda ua: device(ua, w.lang), "layout": LAYOUTS.get(w.user.role)}, w, status_code=status_code)


@router.get("/security", name="web_security")
@html_errors
async def security(request: Request, done: str | None = None, w: WebUser = Depends(web_user),
                   c: psycopg.AsyncConnection = Depends(conn)):
    return await _page(request, w, c, flash=t("sec_done_" + done, w.lang) if done in _DONE else None)


def _back(request: Request, done: str) -> RedirectResponse:
    return RedirectResponse(f"{base_path(request)}/security?done={done}", status_code=303)


@router.post("/security/email")
@html_errors
async def security_email(request: Request, email: str = Form("", max_length=300), csrf: str = Form(""),
                         w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    try:
        await account.set_email(c, w.user, email, w.ip, _mail(request))
    except Invalid as e:
        return await _page(request, w, c, errors=_errors(e, w.lang), email=email, status_code=422)
    return _back(request, "email")


@router.post("/security/password")
@html_errors
async def security_password(request: Request, old: str = Form("", max_length=1000), new: str = Form("", max_length=1000),
                            again: str = Form("", max_length=1000), csrf: str = Form(""),
                            w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    """Change one's own password: the current one is required; other sessions of the user end."""
    check_csrf(w, csrf)
    try:
        await account.change_password(c, w.user, old, new, again, request.cookies.get(sessions.COOKIE), w.ip,
                                     _mail(request))
    except Invalid as e:
        # a wrong current password is refused (403) as before; a weak new one is bad input (422)
        return await _page(request, w, c, errors=_errors(e, w.lang), status_code=403 if e.field == "old" else 422)
    return _back(request, "password")


@router.post("/security/sessions/{session_id}/end")
@html_errors
async def security_end_session(request: Request, session_id: int, csrf: str = Form(""),
                               w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    await account.end_session(c, w.user, session_id, w.ip)
    return _back(request, "session")


@router.post("/security/sessions/end-others")
@html_errors
async def security_end_others(request: Request, csrf: str = Form(""), w: WebUser = Depends(web_user),
                              c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    await account.end_other_sessions(c, w.user, request.cookies.get(sessions.COOKIE), w.ip)
    return _back(request, "others")


@router.get("/security/totp")
@html_errors
async def security_totp(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    """Enrolment: the QR code and the secret; the code from the app confirms it."""
    enrol = await account.totp_start(c, w.user)
    return render(request, "totp.html", {"enrol": enrol, "errors": {}, "layout": LAYOUTS.get(w.user.role)}, w)


@router.post("/security/totp")
@html_errors
async def security_totp_confirm(request: Request, code: str = Form("", max_length=100), csrf: str = Form(""),
                                w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    try:
        codes = await account.totp_confirm(c, w.user, code, w.ip)
    except Invalid as e:
        enrol = await account.totp_start(c, w.user)
        return render(request, "totp.html", {"enrol": enrol, "errors": _errors(e, w.lang),
                                             "layout": LAYOUTS.get(w.user.role)}, w, status_code=422)
    return await _page(request, w, c, flash=t("sec_done_totp", w.lang), codes=codes)


@router.post("/security/totp/disable")
@html_errors
async def security_totp_disable(request: Request, password: str = Form("", max_length=1000), csrf: str = Form(""),
                                w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    try:
        await account.totp_disable(c, w.user, password, w.ip, _mail(request))
    except Invalid as e:
        return await _page(request, w, c, errors=_errors(e, w.lang), status_code=403)
    return _back(request, "totp_off")


@router.post("/security/totp/codes")
@html_errors
async def security_totp_codes(request: Request, password: str = Form("", max_length=1000), csrf: str = Form(""),
                              w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    try:
        codes = await account.recovery_codes(c, w.user, password, w.ip)
    except Invalid as e:
        return await _page(request, w, c, errors=_errors(e, w.lang), status_code=403)
    return await _page(request, w, c, flash=t("sec_done_codes", w.lang), codes=codes)


# ---- before login: password reset by e-mail ----------------------------------------------------
@router.get("/password/forgot", name="web_forgot")
async def forgot(request: Request, login: str = ""):
    return public_page(request, "password_forgot.html", {"ident": login[:200], "errors": {}, "sent": False})


@router.post("/password/forgot")
async def forgot_send(request: Request, ident: str = Form("", max_length=300), csrf: str = Form(""),
                      c: psycopg.AsyncConnection = Depends(conn)):
    lang = public_lang(request)
    ctx = {"ident": ident, "errors": {}, "sent": False}
    if not public_csrf_ok(request, csrf):
        return public_page(request, "password_forgot.html", ctx | {"errors": {"ident": t("csrf_failed", lang)}}, 403)
    settings = request.app.state.settings
    try:
        answer = await reset.request(c, ident, client_ip(request), mail=_mail(request),
                                     base_url=settings.base_url)
    except Invalid as e:
        return public_page(request, "password_forgot.html", ctx | {"errors": _errors(e, lang)}, 422)
    if answer.retry_after_s:
        resp = public_page(request, "password_forgot.html",
                           ctx | {"errors": {"ident": t("reset_locked", lang, s=wait(answer.retry_after_s, lang))}}, 429)
        resp.headers["Retry-After"] = str(answer.retry_after_s)
        return resp
    return public_page(request, "password_forgot.html", ctx | {"sent": True})


@router.get("/password/reset", name="web_reset")
async def reset_form(request: Request, token: str = "", c: psycopg.AsyncConnection = Depends(conn)):
    lang = public_lang(request)
    try:
        user = await reset.holder(c, token)
    except Invalid as e:
        return public_page(request, "password_reset.html", {"token": "", "errors": {"token": e.text(lang)},
                                                            "login": ""}, 410 if e.details.get("spent") else 404)
    return public_page(request, "password_reset.html", {"token": token, "errors": {}, "login": user.login})


@router.post("/password/reset")
async def reset_save(request: Request, token: str = Form("", max_length=300), password: str = Form("", max_length=1000),
                     again: str = Form("", max_length=1000), csrf: str = Form(""),
                     c: psycopg.AsyncConnection = Depends(conn)):
    lang = public_lang(request)
    if not public_csrf_ok(request, csrf):
        return public_page(request, "password_reset.html", {"token": token, "login": "",
                                                            "errors": {"token": t("csrf_failed", lang)}}, 403)
    try:
        await reset.complete(c, token, password, again, client_ip(request), _mail(request))
    except Invalid as e:
        keep = token if e.field != "token" else ""
        login = ""
        if keep:
            login = (await reset.holder(c, token)).login
        return public_page(request, "password_reset.html", {"token": keep, "login": login,
                                                            "errors": _errors(e, lang)}, 422)
    return RedirectResponse(f"{base_path(request)}/login?reset=1", status_code=303)
