"""The organisation's side of the cabinet (`/web/customers`): its customers with their
contracts and roles, a new customer (initial password or invitation link), the CSV
import, whether customers' readings need confirmation, and the readings waiting for
it (confirm, or reject with a reason). Plus the invitation page a new customer opens
to set its password; the customers' requests for the role «Администратор», answered here.
Thin: the work is in customers/accounts, customers/admin_requests and readings/confirmations."""
from __future__ import annotations

import psycopg
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from askue.headend.auth.permissions import DUTIES, Action
from askue.headend.customers import accounts, admin_requests
from askue.headend.errors import Invalid, ServiceError
from askue.headend.notify.mail import MailSettings
from askue.headend.readings import confirmations
from askue.headend.web import queries as wq
from askue.headend.web.deps import (
    WebUser,
    base_path,
    check_csrf,
    conn,
    html_errors,
    render,
    translator,
    web_user,
)

router = APIRouter()


async def _settings(c, w: WebUser) -> list[dict]:
    out = []
    for o in await wq.visible_orgs(c, w.principal):
        out.append(o | {"confirm": await confirmations.required(c, o["id"])})
    return out


async def _page(request: Request, w: WebUser, c, **extra):
    may_manage, may_confirm = w.principal.may(Action.CUSTOMERS_MANAGE), w.principal.may(Action.READINGS_CONFIRM)
    if not (may_manage or may_confirm):
        w.principal.require(Action.CUSTOMERS_MANAGE)
    tr = translator(w.lang)
    return render(request, "customers.html", {
        "customers": await accounts.managed(c, w.principal) if may_manage else [],
        "pending": await confirmations.pending(c, w.principal) if may_confirm else [],
        "settings": await _settings(c, w) if may_manage else [], "duties": DUTIES, "tr": tr,
        "admin_requests": await admin_requests.waiting(c, w.principal) if may_manage else [],
        "may_manage": may_manage, "created": None, "imported": None, "error": None} | extra, w,
        status_code=422 if extra.get("error") else 200)


@router.get("/customers")
@html_errors
async def customers_page(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    return await _page(request, w, c)


@router.post("/customers")
@html_errors
async def customers_create(request: Request, login: str = Form(..., max_length=100), name: str = Form(""),
                           email: str = Form(""), account_codes: str = Form(...), duty: str = Form("manager"),
                           password: str = Form(""), csrf: str = Form(""), w: WebUser = Depends(web_user),
                           c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    codes = [x.strip() for x in account_codes.replace(";", ",").split(",") if x.strip()]
    try:
        done = await accounts.create(c, w.principal, accounts.NewCustomer(login, name, email,
                                                                          [(a, duty) for a in codes], password))
    except (Invalid, ServiceError) as e:
        return await _page(request, w, c, error=e.text(w.lang))
    link = f"{request.base_url}{base_path(request).lstrip('/')}/invite/{done.invite}" if done.invite else None
    return await _page(request, w, c, created={"login": done.login, "link": link})


@router.post("/customers/import")
@html_errors
async def customers_import(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    form = await request.form()
    check_csrf(w, str(form.get("csrf", "")))
    f = form.get("file")
    raw = await f.read(2 * 1024 * 1024) if f is not None and hasattr(f, "read") else b""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1251", errors="replace")
    rows = await accounts.import_csv(c, w.principal, text)
    base = f"{request.base_url}{base_path(request).lstrip('/')}/invite/"
    return await _page(request, w, c, imported=[r.__dict__ | {"link": base + r.invite if r.invite else None}
                                                for r in rows])


@router.post("/customers/settings")
@html_errors
async def customers_settings(request: Request, org_id: int = Form(...), confirm: str = Form(""), csrf: str = Form(""),
                             w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    await confirmations.set_required(c, w.principal, org_id, confirm == "1")
    return RedirectResponse(f"{base_path(request)}/customers", status_code=303)


@router.post("/customers/pending/{submission_id}")
@html_errors
async def customers_decide(request: Request, submission_id: int, decision: str = Form(...), reason: str = Form(""),
                           csrf: str = Form(""), w: WebUser = Depends(web_user),
                           c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    try:
        await confirmations.decide(c, w.principal, submission_id, decision == "accept", reason)
    except (Invalid, ServiceError) as e:
        return await _page(request, w, c, error=e.text(w.lang))
    return RedirectResponse(f"{base_path(request)}/customers", status_code=303)


@router.post("/customers/admin-requests/{request_id}")
@html_errors
async def customers_admin_request(request: Request, request_id: int, decision: str = Form(...),
                                  answer: str = Form(""), csrf: str = Form(""),
                                  w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    check_csrf(w, csrf)
    settings = request.app.state.settings
    try:
        await admin_requests.answer(c, w.principal, request_id, decision == "grant", answer,
                                    mail=MailSettings.from_settings(settings), base_url=settings.base_url)
    except (Invalid, ServiceError) as e:
        return await _page(request, w, c, error=e.text(w.lang))
    return RedirectResponse(f"{base_path(request)}/customers#admin-requests", status_code=303)


# ---- the invitation (no session: the customer has no password yet) ----------------------------
@router.get("/invite/{token}")
async def invite_page(request: Request, token: str, c: psycopg.AsyncConnection = Depends(conn)):
    try:
        login = await accounts.invited_login(c, token)
    except ServiceError as e:
        return render(request, "invite.html", {"token": token, "error": e.message_ru, "done": None, "gone": True,
                                               "tr": translator("ru")}, status_code=404)
    return render(request, "invite.html", {"token": token, "error": None, "done": None, "login": login,
                                           "tr": translator("ru")})


@router.post("/invite/{token}")
async def invite_accept(request: Request, token: str, password: str = Form(..., max_length=1000),
                        password2: str = Form(..., max_length=1000), c: psycopg.AsyncConnection = Depends(conn)):
    tr = translator("ru")
    if password != password2:
        return render(request, "invite.html", {"token": token, "error": "Пароли не совпадают", "done": None, "tr": tr},
                      status_code=422)
    try:
        login = await accounts.accept_invite(c, token, password)
    except ServiceError as e:
        return render(request, "invite.html", {"token": token, "error": e.message_ru, "done": None, "tr": tr},
                      status_code=422 if isinstance(e, Invalid) else 404)
    return render(request, "invite.html", {"token": token, "error": None, "done": login, "tr": tr})
