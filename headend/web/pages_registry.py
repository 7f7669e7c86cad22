"""Registry pages for administrators and organisation admins: organisations, houses,
accounts, gateways and meters (passport, dated parameters, gateway binding, install, exchange
and removal acts, serial confirmation, history), and the quarantine. Thin adapters over the
registry services; a refused field is shown beside its input, nothing is stored.
An organisation's admin sees and changes only their own organisation (the services say so).
"""
from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse

from askue.headend.auth.permissions import Action
from askue.headend.billing.snapshots import zone_name
from askue.headend.errors import Invalid
from askue.headend.registry import acts, entities, holds, meters
from askue.headend.registry import validate as v
from askue.headend.storage import meta
from askue.headend.storage.queries import gateways as gq
from askue.headend.storage.queries import meters as mq
from askue.headend.storage.queries import registry as rq
from askue.headend.web import queries as wq
from askue.headend.web.deps import WebUser, base_path, check_csrf, conn, html_errors, render, web_user

router = APIRouter()
TABS = ("meters", "houses", "accounts", "organisations", "gateways", "quarantine")
# tab -> the entity service's name and its key field
_ENTITY = {"organisations": ("organisation", "code"), "houses": ("site", "code"), "accounts": ("account", "code"),
           "gateways": ("gateway", "id")}
ORG_KINDS = {"uk": ("УК", "Management company"), "tsj": ("ТСЖ", "HOA"), "snt": ("СНТ", "Garden partnership"),
             "grid": ("Сетевая компания", "Grid company"), "retailer": ("Энергосбыт", "Retailer"),
             "other": ("Другое", "Other")}


def _errors(e: Invalid, lang: str) -> dict[str, str]:
    items = e.details.get("errors") or [{"field": e.field, "message": e.message, "message_ru": e.message_ru}]
    return {i["field"]: i["message_ru"] if lang == "ru" else i["message"] for i in items}  # type: ignore[union-attr]


async def _form(request: Request, w: WebUser) -> dict[str, Any]:
    form = await request.form()
    check_csrf(w, str(form.get("csrf", "")))
    return {k: str(x).strip() for k, x in form.multi_items() if k not in ("csrf",)}


def _given(form: dict[str, Any], *skip: str) -> dict[str, Any]:
    """Filled inputs only: an empty input leaves the value as it is."""
    return {k: x for k, x in form.items() if x != "" and k not in skip and k != "action"}


async def _lists(c: psycopg.AsyncConnection, w: WebUser) -> dict[str, list]:
    """What the forms offer in their selects: organisations, houses, gateways the user sees."""
    scope = w.principal.scope
    return {"orgs": await wq.visible_orgs(c, w.principal),
            "houses": await rq.list_registry(c, "sites", scope, None, None, 2000),
            "gateways": await gq.list_gateways(c, scope, None, 2000)}


@router.get("/registry")
@html_errors
async def registry_page(request: Request, tab: str = Query("meters"), q: str | None = None,
                        w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    return await _registry_view(request, w, c, tab, q)


async def _registry_view(request: Request, w: WebUser, c: psycopg.AsyncConnection, tab: str, q: str | None,
                         errors: dict | None = None, form: dict | None = None, status: int = 200):
    w.principal.require(Action.REGISTRY_EDIT)
    tab = tab if tab in TABS else "meters"
    scope = w.principal.scope
    rows: list[dict] = []
    if tab == "meters":
        rows = await mq.list_meters(c, mq.MeterFilter(q=q or None), scope, None, 500)
    elif tab == "gateways":
        rows = [g for g in await gq.list_gateways(c, scope, None, 2000) if not q or q.lower() in g["id"].lower()]
    elif tab == "quarantine":
        rows = await holds.summary(c, w.principal)
    else:
        rows = await rq.list_registry(c, {"houses": "sites"}.get(tab, tab), scope, q or None, None, 500)
    return render(request, "registry.html", {"tab": tab, "tabs": TABS, "rows": rows, "q": q or "",
                                             "errors": errors or {}, "form": form or {}, "org_kinds": ORG_KINDS,
                                             **await _lists(c, w)}, w, status_code=status)


@router.post("/registry/{tab}")
@html_errors
async def registry_create(request: Request, tab: str, w: WebUser = Depends(web_user),
                          c: psycopg.AsyncConnection = Depends(conn)):
    form = await _form(request, w)
    if tab == "meters" and form.get("action") == "install":
        try:
            done = await acts.record(c, w.principal, "install", _act(None, form))
        except Invalid as e:
            await c.rollback()
            return await _registry_view(request, w, c, tab, None,
                                        {f"install.{k}": m for k, m in _errors(e, w.lang).items()}, form, 422)
        return RedirectResponse(f"{base_path(request)}/registry/meters/{done.new_meter}?saved=install",
                                status_code=303)
    try:
        if tab == "meters":
            code = form.pop("code", "")
            await meters.save(c, w.principal, code, _given(form), create=True)
            return RedirectResponse(f"{base_path(request)}/registry/meters/{code}?saved=1", status_code=303)
        kind, key = _ENTITY[tab] if tab in _ENTITY else (None, None)
        if kind is None:
            return RedirectResponse(f"{base_path(request)}/registry", status_code=303)
        await entities.save(c, w.principal, kind, form.get(key, ""), _given(form, key), create=True)
    except Invalid as e:
        await c.rollback()
        return await _registry_view(request, w, c, tab, None, _errors(e, w.lang), form, 422)
    return RedirectResponse(f"{base_path(request)}/registry?tab={tab}&saved=1", status_code=303)


@router.get("/registry/{tab}/{key}")
@html_errors
async def object_page(request: Request, tab: str, key: str, w: WebUser = Depends(web_user),
                      c: psycopg.AsyncConnection = Depends(conn)):
    return await _object_view(request, w, c, tab, key)


async def _object_view(request: Request, w: WebUser, c: psycopg.AsyncConnection, tab: str, key: str,
                       errors: dict | None = None, form: dict | None = None, status: int = 200):
    w.principal.require(Action.REGISTRY_EDIT)
    if tab == "meters":
        return await _meter_page(request, w, c, key, errors or {}, form or {}, status)
    kind, field = _ENTITY.get(tab, (None, None))
    if kind is None:
        return RedirectResponse(f"{base_path(request)}/registry", status_code=303)
    obj = await entities.get(c, w.principal, kind, key)
    return render(request, "registry_object.html", {"tab": tab, "kind": kind, "key": key, "obj": obj,
                                                    "errors": errors or {}, "form": form or {},
                                                    "org_kinds": ORG_KINDS, **await _lists(c, w)}, w,
                  status_code=status)


@router.post("/registry/{tab}/{key}")
@html_errors
async def object_update(request: Request, tab: str, key: str, w: WebUser = Depends(web_user),
                        c: psycopg.AsyncConnection = Depends(conn)):
    form = await _form(request, w)
    action = form.get("action", "save")
    try:
        if tab == "meters":
            await _meter_action(c, w, key, action, form)
        elif tab in _ENTITY:
            await entities.save(c, w.principal, _ENTITY[tab][0], key, _given(form), create=False)
    except Invalid as e:
        await c.rollback()
        return await _object_view(request, w, c, tab, key,
                                  {f"{action}.{k}": m for k, m in _errors(e, w.lang).items()}, form, 422)
    return RedirectResponse(f"{base_path(request)}/registry/{tab}/{key}?saved={action}", status_code=303)


async def _meter_action(c: psycopg.AsyncConnection, w: WebUser, code: str, action: str, form: dict) -> None:
    p = w.principal
    if action == "passport":
        await meters.save(c, p, code, _given(form), create=False)
    elif action == "params":
        data = _given(form)
        m = await meters.find(c, p, code)
        try:  # the multiplier shown beside Ктт and Ктн follows them unless it was edited itself
            if "multiplier" in data and v.number("multiplier", data["multiplier"]) == m["multiplier"]:
                data.pop("multiplier")
        except Invalid:
            pass
        await meters.save(c, p, code, data, create=False)
    elif action == "bind":
        at = v.moment("at", form.get("at"), await meta.timezone(c))
        async with c.transaction():
            await meters.bind(c, p, code, form.get("gateway") or None, form.get("gateway_code") or None, at)
    elif action == "unbind":
        at = v.moment("at", form.get("at"), await meta.timezone(c))
        async with c.transaction():
            await meters.unbind(c, p, code, at)
    elif action in ("exchange", "removal"):
        await acts.record(c, p, action, _act(code, form))
    elif action == "confirm_serial":
        await holds.confirm_serial(c, p, code, take_reported=form.get("take") == "reported",
                                   comment=form.get("comment") or None)
    else:
        raise Invalid("action", f"unknown action {action!r}", f"неизвестное действие «{action}»")


def _act(code: str | None, form: dict) -> dict[str, Any]:
    """The act form's flat inputs as an act: old_final.T1, new_initial.T1, new_meter.serial …
    (`code`: the old meter; None for an install act, which names where the new one goes)."""
    data: dict[str, Any] = {"meter": code, "at": form.get("at") or None} if code else {"at": form.get("at") or None}
    for key in ("old_final", "new_initial", "new_meter") if code else ("new_initial", "new_meter"):
        prefix = key + "."
        part = {k[len(prefix):]: x for k, x in form.items() if k.startswith(prefix) and x != ""}
        if part or key != "new_meter":
            data[key] = part
    where = () if code else ("resource", "house", "account", "gateway")
    for k in ("document", "comment", "gateway_code", "unit", *where):
        if form.get(k):
            data[k] = form[k]
    if "new_meter" not in data and "new_initial" in data and not data["new_initial"]:
        data.pop("new_initial")
    return data


async def _meter_page(request: Request, w: WebUser, c: psycopg.AsyncConnection, code: str, errors: dict,
                      form: dict, status: int):
    m = await mq.get_meter(c, code, w.principal.scope)
    if m is None:
        await meters.find(c, w.principal, code)  # raises NotFound in the operator's language
    history = await meters.history(c, w.principal, code)
    zones = max(1, int(m.get("tariff_zones") or 1))
    tariffs = ["total"] if m["resource"] != "electricity" or zones == 1 else [f"T{i}" for i in range(1, zones + 1)]
    return render(request, "registry_meter.html", {
        "m": m, "h": history, "tariffs": tariffs, "errors": errors, "form": form, "tab": "meters",
        "saved": None if errors else request.query_params.get("saved"), "zone_of": zone_name,
        "shown": lambda x, key="": _shown(x, w.lang, key), **await _lists(c, w)}, w, status_code=status)


def _shown(x: Any, lang: str, key: str = "") -> str:
    """A value of the change history as people read it."""
    from datetime import date, datetime

    from askue.headend.units import number
    from askue.headend.web.i18n import t

    if (x is None and key == "from") or x == "0001-01-01":
        return "начала учёта" if lang == "ru" else "the start"
    if x is None:
        return "—"
    if key in ("resource", "status"):
        return t(str(x), lang)
    if isinstance(x, bool):
        return ("да" if x else "нет") if lang == "ru" else ("yes" if x else "no")
    if isinstance(x, int | float):
        return number(x, lang)
    if isinstance(x, dict):
        return "; ".join(f"{zone_name(k)} {_shown(y, lang)}" for k, y in x.items())
    if isinstance(x, str) and len(x) >= 10 and x[4] == "-" and x[7] == "-":
        try:
            t = datetime.fromisoformat(x)
            return t.strftime("%d.%m.%Y %H:%M") if len(x) > 10 else date.fromisoformat(x).strftime("%d.%m.%Y")
        except ValueError:
            return x
    return str(x)


@router.post("/registry-quarantine")
@html_errors
async def quarantine_action(request: Request, w: WebUser = Depends(web_user),
                            c: psycopg.AsyncConnection = Depends(conn)):
    form = await _form(request, w)
    try:
        if form.get("action") == "release":
            await holds.release(c, w.principal, gateway=form.get("gateway"), code=form.get("code"),
                                meter=form.get("meter") or None)
        else:
            await holds.discard(c, w.principal, gateway=form.get("gateway"), code=form.get("code"),
                                comment=form.get("comment"))
    except Invalid as e:
        await c.rollback()
        return await _registry_view(request, w, c, "quarantine", None,
                                    {f"{form.get('gateway')}/{form.get('code')}": "; ".join(_errors(e, w.lang).values())},
                                    form, 422)
    return RedirectResponse(f"{base_path(request)}/registry?tab=quarantine&saved=1", status_code=303)
