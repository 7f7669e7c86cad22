"""«Оповещения»: a user's own alert subscriptions (add, change, switch off, delete, send a
test) and their latest notices. The work is `askue.headend.notify.subscriptions`'s; this
module reads the form, shows bad input next to its field, and renders."""
from __future__ import annotations

from datetime import datetime

import psycopg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from askue.headend.errors import Invalid
from askue.headend.events.catalogue import KINDS
from askue.headend.events.describe import zone_label
from askue.headend.notify import outbox
from askue.headend.notify import subscriptions as subs
from askue.headend.notify.worker import Channels, SendError
from askue.headend.web.deps import WebUser, base_path, check_csrf, conn, html_errors, render, web_user
from askue.headend.web.i18n import t
from askue.headend.web.queries import visible_orgs

router = APIRouter()


def _channels(request: Request) -> Channels:
    return Channels.from_settings(request.app.state.settings)


async def _page(request: Request, w: WebUser, c: psycopg.AsyncConnection, *, form: subs.SubscriptionForm | None = None,
                edit: int | None = None, errors: dict | None = None, flash: str | None = None,
                flash_error: str | None = None, status_code: int = 200):
    mine = await subs.list_own(c, w.user)
    if form is None:
        form = subs.SubscriptionForm()
        if edit is not None:
            s = await subs.get_own(c, w.user, edit)
            form = subs.SubscriptionForm(s["channel"], s["target"], "", list(s["kinds"]), s["min_severity"],
                                         list(s["orgs"] or []), s["send_resolved"], s["active"])
    has_secret = next((s["has_secret"] for s in mine if s["id"] == edit), False)
    lang_i = 0 if w.lang == "ru" else 1
    kinds = sorted(((k, v[lang_i]) for k, v in KINDS.items()), key=lambda kv: kv[1])
    return render(request, "alerts.html", {
        "subs": mine, "form": form, "edit": edit, "errors": errors or {}, "flash": flash, "flash_error": flash_error,
        "kinds": kinds, "kind_title": {k: v for k, v in kinds}, "orgs": await visible_orgs(c, w.principal),
        "deliveries": await outbox.deliveries_for(c, w.principal, w.user.id),
        "mail_ready": request.app.state.settings.smtp_host is not None, "has_secret": has_secret,
        "zone": zone_label(w.tz, lang=w.lang, word=False), "now": datetime.now(w.tz)}, w, status_code=status_code)


@router.get("/alerts")
@html_errors
async def alerts(request: Request, edit: int | None = None, saved: int | None = None, deleted: int | None = None,
                 w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    flash = t("saved_sub", w.lang, id=saved) if saved else t("deleted_sub", w.lang, id=deleted) if deleted else None
    return await _page(request, w, c, edit=edit, flash=flash)


@router.post("/alerts")
@html_errors
async def alerts_save(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    data = await request.form()
    check_csrf(w, data.get("csrf"))
    sub_id = int(data["id"]) if str(data.get("id") or "").isdigit() else None
    form = subs.SubscriptionForm(
        channel=str(data.get("channel") or ""), target=str(data.get("target") or ""),
        secret=str(data.get("secret") or ""), kinds=[str(k) for k in data.getlist("kinds")],
        min_severity=str(data.get("min_severity") or ""), orgs=[str(o) for o in data.getlist("orgs")],
        send_resolved=data.get("send_resolved") == "true", active=data.get("active") == "true")
    try:
        saved = await subs.save(c, w.user, form, sub_id=sub_id, ip=w.ip)
    except Invalid as e:
        found = e.details.get("errors") or {e.field: (e.message, e.message_ru)}
        errors = {k: v[1] if w.lang == "ru" else v[0] for k, v in found.items()}
        return await _page(request, w, c, form=form, edit=sub_id, errors=errors, status_code=422)
    return RedirectResponse(f"{base_path(request)}/alerts?saved={saved['id']}", status_code=303)


@router.post("/alerts/{sub_id}/active")
@html_errors
async def alerts_active(request: Request, sub_id: int, w: WebUser = Depends(web_user),
                        c: psycopg.AsyncConnection = Depends(conn)):
    data = await request.form()
    check_csrf(w, data.get("csrf"))
    await subs.set_active(c, w.user, sub_id, data.get("active") == "true", ip=w.ip)
    return RedirectResponse(f"{base_path(request)}/alerts?saved={sub_id}", status_code=303)


@router.post("/alerts/{sub_id}/delete")
@html_errors
async def alerts_delete(request: Request, sub_id: int, w: WebUser = Depends(web_user),
                        c: psycopg.AsyncConnection = Depends(conn)):
    data = await request.form()
    check_csrf(w, data.get("csrf"))
    await subs.remove(c, w.user, sub_id, ip=w.ip)
    return RedirectResponse(f"{base_path(request)}/alerts?deleted={sub_id}", status_code=303)


@router.post("/alerts/{sub_id}/test")
@html_errors
async def alerts_test(request: Request, sub_id: int, w: WebUser = Depends(web_user),
                      c: psycopg.AsyncConnection = Depends(conn)):
    data = await request.form()
    check_csrf(w, data.get("csrf"))
    target = (await subs.get_own(c, w.user, sub_id))["target"]
    try:
        await subs.send_test(c, w.user, sub_id, _channels(request), ip=w.ip)
    except SendError as e:
        return await _page(request, w, c, flash_error=t("test_failed", w.lang, target=target, why=e.text(w.lang)))
    return await _page(request, w, c, flash=t("test_sent", w.lang, target=target))
