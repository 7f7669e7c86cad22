"""What every page needs: the logged-in user from the session cookie, the CSRF
check for forms, the time zone, and rendering with the operator's language."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

import psycopg
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from askue.headend import names, units
from askue.headend.api import background
from askue.headend.api import deps as api_deps
from askue.headend.auth import sessions
from askue.headend.auth.permissions import ROLE_TITLES, Action, Principal
from askue.headend.auth.users import User
from askue.headend.errors import ServiceError
from askue.headend.web.i18n import LANGS, t

TEMPLATES = Path(__file__).parent / "templates"
LANG_COOKIE = "askue_lang"
# Everything is served by the head-end itself; nothing may frame the pages.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
}
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Header:
    """What the page header shows: «Абонентов: N», the previous login, the menu badges."""

    subscribers: int
    open_events: int
    silent_meters: int
    last_login_at: datetime | None
    last_login_ip: str | None


@dataclass(frozen=True)
class WebUser:
    user: User
    csrf: str
    lang: str
    tz: tzinfo
    ip: str | None = None
    header: Header | None = None
    accounts: tuple[tuple[int, str], ...] | None = None  # a customer's accounts and its role on each

    @property
    def principal(self) -> Principal:
        return replace(self.user.principal(self.ip), accounts=self.accounts)

    def may(self, action: str) -> bool:
        return self.principal.may(Action(action))


class LoginRequired(HTTPException):
    def __init__(self, location: str) -> None:
        super().__init__(303, "login required", headers={"Location": location})


def base_path(request: Request) -> str:
    """Where the pages live (the web router may be mounted under any prefix)."""
    return request.app.url_path_for("web_overview").rstrip("/")


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    """Pages read from the replica and act on the primary, as the API (api/deps.py)."""
    async with api_deps.connection(request) as c:
        yield c


async def primary_conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    async with request.app.state.pool.connection() as c:
        yield c


async def db_tz(c: psycopg.AsyncConnection) -> tzinfo:
    from askue.headend.storage import meta

    return await meta.timezone(c)


def pick_lang(request: Request, user: User | None = None) -> str:
    q = request.query_params.get("lang")
    if q in LANGS:
        return q
    c = request.cookies.get(LANG_COOKIE)
    if c in LANGS:
        return c
    return user.lang if user else "ru"


async def web_user(request: Request, c: psycopg.AsyncConnection = Depends(conn)) -> WebUser:
    token = request.cookies.get(sessions.COOKIE)
    s = await sessions.load(c, token)
    if s is None and api_deps.has_replica(request) and request.method in ("GET", "HEAD"):
        async with request.app.state.pool.connection() as pc:  # a session begun a moment ago
            s = await sessions.load(pc, token)
    if s is not None and s.stale:
        background.touch(request.app.state.pool, sessions.TOUCH_SQL, (s.token_hash,))
    if s is None:
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(f"{base_path(request)}/login?next={_quote(nxt)}")
    ip = client_ip(request)
    if s.user.role == "customer":
        return await _customer(request, c, s, ip)
    head = await header(c, s.user.principal(ip), s.user.login) if request.method == "GET" else None
    return WebUser(s.user, s.csrf, pick_lang(request, s.user), await db_tz(c), ip, head)


# The pages a customer may open: the cabinet and its own account's (password, sessions, security).
CUSTOMER_PAGES = ("/cabinet", "/logout", "/password", "/account", "/security", "/sessions", "/totp")


async def _customer(request: Request, c: psycopg.AsyncConnection, s: sessions.Session, ip: str | None) -> WebUser:
    from askue.headend.customers import accounts

    base = base_path(request)
    rest = request.url.path[len(base):] if request.url.path.startswith(base) else request.url.path
    if not any(rest == p or rest.startswith(p + "/") for p in CUSTOMER_PAGES):
        if request.method == "GET":
            raise LoginRequired(f"{base}/cabinet")  # a 303 to the customer's own pages
        raise HTTPException(403, "customers use the cabinet")
    bound = await accounts.bindings(c, s.user.id)
    return WebUser(s.user, s.csrf, pick_lang(request, s.user), await db_tz(c), ip, None, bound)


async def header(c: psycopg.AsyncConnection, p: Principal, login: str) -> Header:
    from askue.headend.auth import audit
    from askue.headend.events import service as events
    from askue.headend.storage.queries import counts

    now = datetime.now().astimezone()
    last = await audit.previous_login(c, login)
    return Header(await counts.subscribers(c, p.scope),
                  (await events.count_events(c, p, events.EventFilter()))["total"],
                  await counts.silent_meters(c, p.scope, now), last["at"] if last else None,
                  last["ip"] if last else None)


def _quote(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="/")


def check_csrf(w: WebUser, token: str | None) -> None:
    import hmac

    if not token or not hmac.compare_digest(token, w.csrf):
        raise HTTPException(403, t("csrf_failed", w.lang))


def fmt_dt(v: datetime | None, tz: tzinfo, seconds: bool = False) -> str:
    if v is None:
        return ""
    return v.astimezone(tz).strftime("%d.%m.%Y %H:%M:%S" if seconds else "%d.%m.%Y %H:%M")


def fmt_d(v: date | None) -> str:
    return v.strftime("%d.%m.%Y") if v else ""


def fmt_num(v: float | None, digits: int = 3) -> str:
    if v is None:
        return ""
    s = f"{v:,.{digits}f}".replace(",", "\u00a0")
    return s.rstrip("0").rstrip(".") if "." in s else s


def translator(lang: str):
    """`tr(ru, en)` for the customer pages, whose texts live beside them in the templates."""
    def tr(ru: str, en: str) -> str:
        return en if lang == "en" else ru
    return tr


def name_helpers(lang: str) -> dict[str, Any]:
    """What templates call to name things (askue.headend.names) and to write numbers with units;
    a page's own context keys of the same name win."""
    return {"ch": lambda obis, zones=None: names.channel(obis, lang, zones=zones),
            "zone": lambda z: names.zone(z, lang), "res": lambda r: names.resource(r, lang),
            "quality": lambda q: names.quality(q, lang), "source": lambda v: names.source(v, lang),
            "reading_status": lambda s: names.reading_status(s, lang), "tr": translator(lang),
            "reasons": lambda rs: names.reasons(rs, lang), "meter_status": lambda v: names.meter_status(v, lang),
            "actor_name": lambda v: names.actor(v, lang), "contact": lambda b: names.contact(b, lang),
            "n": lambda v, places=3: units.number(v, lang, places),
            "unit": lambda r, obis=None: units.unit(r, obis, lang),
            "amount": lambda v, r, obis=None: units.amount(v, r, obis, lang)}


def render(request: Request, name: str, ctx: dict[str, Any], w: WebUser | None = None,
           status_code: int = 200, lang: str | None = None, img_src: tuple[str, ...] = ()) -> HTMLResponse:
    """A page; `img_src` adds origins its images may come from (the map's tile server)."""
    lang = lang or (w.lang if w else pick_lang(request))
    tz = w.tz if w else None
    page = _env.get_template(name).render(
        request=request, base=base_path(request), user=w.user if w else None, csrf=w.csrf if w else "",
        lang=lang, t=lambda key, **kw: t(key, lang, **kw), role_title=lambda r: ROLE_TITLES.get(r, (r, r))[lang == "en"],
        dt=lambda v, seconds=False: fmt_dt(v, tz, seconds) if tz else (v.isoformat() if v else ""),
        d=fmt_d, num=fmt_num, path=request.url.path, query=request.url.query,
        may=w.may if w else (lambda action: False), head=w.header if w else None,
        tz_label=names.tz_label(tz, lang) if tz else "", tz_short=names.tz_short(tz, lang=lang) if tz else "",
        **(name_helpers(lang) | ctx))
    headers = SECURITY_HEADERS
    if img_src:
        csp = headers["Content-Security-Policy"].replace("img-src 'self' data:", "img-src 'self' data: " + " ".join(img_src))
        headers = headers | {"Content-Security-Policy": csp}
    resp = HTMLResponse(page, status_code=status_code, headers=headers)
    if request.query_params.get("lang") in LANGS:
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True)
    return resp


def html_errors(fn):
    """Turn a page's service errors and 4xx HTTPExceptions (not found, not allowed, bad
    input) into an HTML page in the operator's language; redirects (3xx) pass through."""
    import functools

    from askue.headend.api.errors import status_of

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        request: Request = kwargs["request"]
        w = kwargs.get("w")
        w = w if isinstance(w, WebUser) else None
        try:
            return await fn(*args, **kwargs)
        except ServiceError as e:
            status, detail = status_of(e), e.text(w.lang if w else pick_lang(request))
        except HTTPException as e:
            if not 400 <= e.status_code < 500:
                raise
            status, detail = e.status_code, e.detail
        title = {404: "not_found", 403: "forbidden"}.get(status)
        return render(request, "error.html", {"status": status, "detail": detail, "title_key": title}, w,
                      status_code=status)
    return wrapper
