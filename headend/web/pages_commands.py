"""Commands on the operators' pages: the command block of the meter card (its own include,
`_meter_commands.html`), the meter's commands page (the same forms with their errors next to
the fields, and the whole history), the relay's confirmation page, the gateway page. Giving,
listing and describing commands are the commands service's; this module reads forms and
renders."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from urllib.parse import quote

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse

from askue.headend.api.errors import status_of
from askue.headend.auth.permissions import Action
from askue.headend.commands import service
from askue.headend.commands.catalogue import KINDS
from askue.headend.errors import Conflict, Forbidden, Invalid, NeedsConfirmation
from askue.headend.storage.queries import gateways as gq
from askue.headend.storage.queries import meters as mq
from askue.headend.web.deps import WebUser, base_path, check_csrf, conn, html_errors, render, web_user

router = APIRouter()
CARD_ROWS = 10


def tz_caption(tz: tzinfo, lang: str) -> str:
    """«Время: Europe/Moscow (UTC+03:00)»: which clock the page's times are on."""
    off = datetime.now(tz).strftime("%z")
    name = getattr(tz, "key", str(tz))
    return f"{'Время' if lang != 'en' else 'Times'}: {name} (UTC{off[:3]}:{off[3:]})"


def _ttl(request: Request) -> float:
    return request.app.state.settings.command_ttl_s


async def _meter(c: psycopg.AsyncConnection, w: WebUser, code: str) -> dict:
    m = await mq.get_meter(c, code, w.principal.scope)
    if m is None:
        raise HTTPException(404, f"прибор учёта {code} не найден" if w.lang == "ru" else f"meter {code!r} not found")
    return m


async def meter_block(c: psycopg.AsyncConnection, w: WebUser, m: dict, *, limit: int = CARD_ROWS,
                      form: dict | None = None, errors: dict | None = None, error: str | None = None,
                      done: int | None = None) -> dict:
    """What `_meter_commands.html` needs, for the meter card or the commands page."""
    rows = await service.list_commands(c, w.principal, meter=m["code"], limit=limit)
    gw = await gq.get_gateway(c, m["gateway_id"], w.principal.scope) if m["gateway_id"] else None
    today = datetime.now(w.tz).date()
    views = [service.view(r, w.lang, w.tz) for r in rows]
    return {"cmd": {
        "meter": m, "rows": views, "gateway": gw, "open": any(v["open"] for v in views),
        "can_send": w.may(Action.COMMANDS_SEND) and bool(m["gateway_id"]) and m["status"] != "decommissioned",
        "can_relay": w.may(Action.COMMANDS_RELAY) and bool(m["gateway_id"]) and m["status"] != "decommissioned",
        "may_any": w.may(Action.COMMANDS_SEND) or w.may(Action.COMMANDS_RELAY),
        "form": {"start": (today - timedelta(days=1)).isoformat(), "end": (today - timedelta(days=1)).isoformat(),
                 **(form or {})},
        "errors": errors or {}, "error": error, "done": done, "tz": tz_caption(w.tz, w.lang),
        "titles": {k: v.title(w.lang) for k, v in KINDS.items()}}}


async def card_context(request: Request, c: psycopg.AsyncConnection, w: WebUser, m: dict) -> dict:
    """The command block on the meter card; `?cmd=<id>` marks the command just given."""
    done = request.query_params.get("cmd", "")
    return await meter_block(c, w, m, done=int(done) if done.isdigit() else None)


def _local_day(v: str, tz: tzinfo, field: str, lang: str) -> datetime:
    if not v.strip():
        raise Invalid(field, f"{field}: a date is required", "укажите дату")
    try:
        return datetime.combine(date.fromisoformat(v.strip()), time(0), tz)
    except ValueError:
        raise Invalid(field, f"{field}: a date as YYYY-MM-DD", "дата в виде ДД.ММ.ГГГГ") from None


@router.get("/meters/{code}/commands")
@html_errors
async def meter_commands(request: Request, code: str, done: int | None = None, w: WebUser = Depends(web_user),
                         c: psycopg.AsyncConnection = Depends(conn)):
    m = await _meter(c, w, code)
    return render(request, "meter_commands.html", {"m": m, **await meter_block(c, w, m, limit=200, done=done)}, w)


@router.get("/meters/{code}/commands/block")
@html_errors
async def meter_commands_block(request: Request, code: str, full: bool = False, w: WebUser = Depends(web_user),
                               c: psycopg.AsyncConnection = Depends(conn)):
    """The block alone: the page refreshes it while a command is under way."""
    m = await _meter(c, w, code)
    return render(request, "_meter_commands.html", await meter_block(c, w, m, limit=200 if full else CARD_ROWS)
                  | {"full": full}, w)


@router.post("/meters/{code}/commands")
@html_errors
async def meter_command(request: Request, code: str, w: WebUser = Depends(web_user),
                        c: psycopg.AsyncConnection = Depends(conn)):
    form = await request.form()
    check_csrf(w, str(form.get("csrf", "")))
    m = await _meter(c, w, code)
    command = str(form.get("command", ""))
    fields = {"start": str(form.get("start", "")), "end": str(form.get("end", ""))}
    try:
        start = end = None
        if command == "read_profile":
            start = _local_day(fields["start"], w.tz, "start", w.lang)
            end = _local_day(fields["end"], w.tz, "end", w.lang) + timedelta(days=1)  # the last day is included
        row = await service.send(c, w.principal, command, meter=m["code"], start=start, end=end,
                                 confirm=form.get("confirm") == "1", default_ttl_s=_ttl(request))
    except (Invalid, NeedsConfirmation, Conflict, Forbidden) as e:
        if command in ("relay_disconnect", "relay_reconnect"):
            field = "confirm" if isinstance(e, NeedsConfirmation) else None
            return await _relay_page(request, w, c, m, command, error=e.text(w.lang), field=field,
                                     status=status_of(e))
        field = e.field if isinstance(e, Invalid) else None
        ctx = await meter_block(c, w, m, limit=200, form=fields, errors={field: e.text(w.lang)} if field else None,
                                error=None if field else e.text(w.lang))
        return render(request, "meter_commands.html", {"m": m, **ctx}, w, status_code=status_of(e))
    back = form.get("back") == "card"
    url = f"{base_path(request)}/meters/{quote(m['code'], safe='')}"
    url += f"?cmd={row['id']}#commands" if back else f"/commands?done={row['id']}"
    return RedirectResponse(url, status_code=303)


async def _relay_page(request: Request, w: WebUser, c: psycopg.AsyncConnection, m: dict, command: str, *,
                      error: str | None = None, field: str | None = None, status: int = 200):
    if command not in ("relay_disconnect", "relay_reconnect"):
        raise Invalid("command", "relay_disconnect or relay_reconnect", "команда реле: отключить или включить")
    return render(request, "relay_confirm.html", {"m": m, "command": command, "title": KINDS[command].title(w.lang),
                                                  "error": error, "field": field, **await meter_block(c, w, m)}, w,
                  status_code=status)


@router.get("/meters/{code}/relay")
@html_errors
async def relay_confirm(request: Request, code: str,
                        command: str = Query("relay_disconnect", pattern="^relay_(disconnect|reconnect)$"),
                        w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    """The relay's first confirmation: what will happen to whom; the form asks for the tick."""
    m = await _meter(c, w, code)
    w.principal.require(Action.COMMANDS_RELAY)
    return await _relay_page(request, w, c, m, command)


# ---- gateway page ----------------------------------------------------------------------------
async def gateway_block(c: psycopg.AsyncConnection, w: WebUser, g: dict, *, error: str | None = None,
                        done: int | None = None) -> dict:
    rows = await service.list_commands(c, w.principal, gateway=g["id"], limit=50)
    views = [service.view(r, w.lang, w.tz) for r in rows]
    return {"g": g, "rows": views, "open": any(v["open"] for v in views), "error": error, "done": done,
            "can_gateway": w.may(Action.COMMANDS_GATEWAY), "tz": tz_caption(w.tz, w.lang),
            "titles": {k: v.title(w.lang) for k, v in KINDS.items()},
            "meters": await mq.list_meters(c, mq.MeterFilter(gateway=g["id"]), w.principal.scope, None, 500)}


async def _gateway(c: psycopg.AsyncConnection, w: WebUser, gid: str) -> dict:
    g = await gq.get_gateway(c, gid, w.principal.scope)
    if g is None:
        raise HTTPException(404, f"шлюз {gid} не найден" if w.lang == "ru" else f"gateway {gid!r} not found")
    return g


@router.get("/gateways/{gid}")
@html_errors
async def gateway_page(request: Request, gid: str, done: int | None = None, w: WebUser = Depends(web_user),
                       c: psycopg.AsyncConnection = Depends(conn)):
    g = await _gateway(c, w, gid)
    return render(request, "gateway.html", await gateway_block(c, w, g, done=done), w)


@router.get("/gateways/{gid}/commands/block")
@html_errors
async def gateway_commands_block(request: Request, gid: str, w: WebUser = Depends(web_user),
                                 c: psycopg.AsyncConnection = Depends(conn)):
    g = await _gateway(c, w, gid)
    return render(request, "_gateway_commands.html", await gateway_block(c, w, g), w)


@router.post("/gateways/{gid}/commands")
@html_errors
async def gateway_command(request: Request, gid: str, w: WebUser = Depends(web_user),
                          c: psycopg.AsyncConnection = Depends(conn)):
    form = await request.form()
    check_csrf(w, str(form.get("csrf", "")))
    g = await _gateway(c, w, gid)
    try:
        row = await service.send(c, w.principal, str(form.get("command", "")), gateway=g["id"],
                                 default_ttl_s=_ttl(request))
    except (Invalid, Conflict, Forbidden) as e:
        return render(request, "gateway.html", await gateway_block(c, w, g, error=e.text(w.lang)), w,
                      status_code=status_of(e))
    return RedirectResponse(f"{base_path(request)}/gateways/{quote(g['id'], safe='')}?done={row['id']}",
                            status_code=303)

