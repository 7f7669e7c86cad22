"""The customer cabinet's pages (`/web/cabinet/…`): «Показания» with the form per point
and the integral template, the hourly profile, consumption by day and month, and the
history of readings, each with its Excel download. Thin: the work is in customers/."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

import psycopg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from askue.headend import documents, units
from askue.headend.auth.permissions import DUTIES, Action
from askue.headend.consumption.periods import next_month
from askue.headend.customers import accounts, admin_requests, points, profile, roles, submit
from askue.headend.customers import consumption as cc
from askue.headend.customers import documents as cdoc
from askue.headend.errors import Conflict, Invalid
from askue.headend.notify.mail import MailSettings
from askue.headend.web.charts import Series, bar_chart
from askue.headend.web.deps import WebUser, base_path, check_csrf, conn, html_errors, render, web_user
from askue.headend.web.pages_customers import translator

router = APIRouter()
XLSX = documents.MEDIA["xlsx"]
MAX_UPLOAD = 20 * 1024 * 1024


def _w(w: WebUser) -> None:
    w.principal.require(Action.CABINET)


def _attachment(name: str, body: bytes) -> Response:
    return Response(body, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _month(text: str | None, today: date) -> date:
    if not text:
        return today.replace(day=1)
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise Invalid("month", f"month {text!r}: use YYYY-MM", f"месяц «{text}»: укажите в виде ГГГГ-ММ") from None


def _day(text: str | None, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid(name, f"{name} {text!r}: use YYYY-MM-DD", f"дата «{text}»: укажите в виде ГГГГ-ММ-ДД") from None


def _today(w: WebUser) -> date:
    return datetime.now(w.tz).date()


async def _ctx(c, w: WebUser) -> dict:
    """What every cabinet page shows: the customer's contracts and its role on each."""
    accs = await accounts.accounts_of(c, w.principal)
    return {"accounts": accs, "duty_title": lambda d: DUTIES.get(d, (d, d))[w.lang == "en"],
            "tr": translator(w.lang)}


async def _posted_form(request: Request, w: WebUser):
    """A cabinet action's posted form, its CSRF token checked."""
    form = await request.form()
    check_csrf(w, str(form.get("csrf", "")))
    return form


async def _posted_file(request: Request, w: WebUser):
    """The posted form (its CSRF token checked) and the bytes of its `file` field."""
    form = await _posted_form(request, w)
    f = form.get("file")
    data = await f.read(MAX_UPLOAD + 1) if f is not None and hasattr(f, "read") else b""
    if len(data) > MAX_UPLOAD:
        raise Invalid("file", "the file is larger than 20 MB", "файл больше 20 МБ")
    return form, data


# ---- «Показания» ---------------------------------------------------------------------------
@router.get("/cabinet", name="cabinet_home")
async def cabinet_home(request: Request, w: WebUser = Depends(web_user)):
    return RedirectResponse(base_path(request) + "/cabinet/readings", status_code=303)


async def _readings_page(request: Request, w: WebUser, c, results: dict | None = None, upload=None,
                         status_code: int = 200):
    q = request.query_params
    f = points.PointFilter(account=q.get("account") or None, status=q.get("status") or None,
                           site=q.get("site") or None)
    if f.status and f.status not in points.STATUSES:
        raise Invalid("status", "status: accepted, pending or rejected", "статус: Принято, Ожидание или Отклонено")
    pts = await points.points(c, w.principal, f, w.lang)
    first = _today(w).replace(day=1)
    # the seed's block under the readings: this month's Расход, Расход интервальный and Дельта
    month = {p.code: (await cc.of_listed_point(c, w.principal, p, "month", first, next_month(first))).figures[0]
             for p in pts}
    return render(request, "cabinet_readings.html", await _ctx(c, w) | {
        "points": pts, "month_figures": month, "month_first": first, "f": f, "sites": await points.sites(c, w.principal), "results": results or {},
        "upload": upload, "today": _today(w)}, w, status_code=status_code)


@router.get("/cabinet/readings")
@html_errors
async def readings_page(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    return await _readings_page(request, w, c)


@router.post("/cabinet/readings/upload")
@html_errors
async def readings_upload(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    form, data = await _posted_file(request, w)
    res = await submit.upload(c, w.principal, data, confirm=form.get("confirm") == "1")
    bad = res.issues or any(r.status == "error" for r in res.rows)
    return await _readings_page(request, w, c, upload=res, status_code=422 if bad else 200)


@router.post("/cabinet/readings/{code}")
@html_errors
async def readings_submit(request: Request, code: str, w: WebUser = Depends(web_user),
                          c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    form = await _posted_form(request, w)
    fields = {k[2:]: str(v) for k, v in form.items() if k.startswith("v|")}
    ts = None
    if form.get("at"):
        try:
            ts = datetime.strptime(str(form["at"]), "%Y-%m-%dT%H:%M").replace(tzinfo=w.tz)
        except ValueError:
            raise Invalid("at", "reading time: use the date picker", "дата снятия: выберите в календаре") from None
    res = await submit.form(c, w.principal, code, fields, ts=ts, confirm=form.get("confirm") == "1")
    status = {"stored": 200, "pending": 200, "needs_confirmation": 409, "invalid": 422}.get(res.status, 422)
    return await _readings_page(request, w, c, {code: {"res": res, "fields": fields}}, status_code=status)


@router.get("/cabinet/readings/template")
@html_errors
async def readings_template(request: Request, account: str = "", w: WebUser = Depends(web_user),
                            c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    name, body = await submit.template(c, w.principal, account or None, w.lang)
    return _attachment(name, body)


# ---- «Договоры»: the contracts, the request for «Администратор», and for the Администратор the
# colleagues' roles ----------------------------------------------------------------------------------
async def _contracts_page(request: Request, w: WebUser, c, *, given: dict | None = None,
                          errors: dict | None = None, form: dict | None = None, asking: str | None = None,
                          asked: admin_requests.AdminRequest | None = None, status_code: int = 200):
    view = await admin_requests.cabinet(c, w.principal)
    ctx = await _ctx(c, w)
    if not errors and asking not in {a["code"] for a in ctx["accounts"]} - view.with_admin:
        asking = None  # a link to another contract, or one that has got its Администратор since
    return render(request, "cabinet_contracts.html", ctx | {
        "contracts": await roles.contracts(c, w.principal), "given_duties": roles.GIVEN, "given": given,
        "errors": errors or {}, "form": form or {}, "with_admin": view.with_admin, "requests": view.requests,
        "open_for": {r.account: r for r in view.requests if r.status == "open"}, "asking": asking,
        "asked": asked, "message_max": admin_requests.MESSAGE_MAX}, w, status_code=status_code)


@router.get("/cabinet/contracts")
@html_errors
async def contracts_page(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    return await _contracts_page(request, w, c, asking=request.query_params.get("ask") or None)


@router.post("/cabinet/contracts/{code}/admin-request")
@html_errors
async def contract_admin_request(request: Request, code: str, w: WebUser = Depends(web_user),
                                 c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    form = await _posted_form(request, w)
    message = str(form.get("message", ""))[:admin_requests.MESSAGE_MAX * 2]
    try:
        asked = await admin_requests.ask(c, w.principal, code, message)
    except (Invalid, Conflict) as e:
        return await _contracts_page(request, w, c, errors={"ask": e.text(w.lang)}, form={"message": message},
                                     asking=code, status_code=422 if isinstance(e, Invalid) else 409)
    return await _contracts_page(request, w, c, asked=asked)


@router.post("/cabinet/contracts/{code}/roles")
@html_errors
async def contract_role_give(request: Request, code: str, w: WebUser = Depends(web_user),
                             c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    form = await _posted_form(request, w)
    email, duty = str(form.get("email", ""))[:300], str(form.get("duty", ""))
    settings = request.app.state.settings
    try:
        done = await roles.give(c, w.principal, code, email, duty, mail=MailSettings.from_settings(settings),
                                base_url=settings.base_url)
    except (Invalid, Conflict) as e:
        field = getattr(e, "field", None) or e.details.get("field") or "email"
        return await _contracts_page(request, w, c, errors={code: {field: e.text(w.lang)}},
                                     form={"code": code, "email": email, "duty": duty},
                                     status_code=422 if isinstance(e, Invalid) else 409)
    return await _contracts_page(request, w, c, given={"code": code, "duty": duty, "done": done})


@router.post("/cabinet/contracts/{code}/roles/{login}/remove")
@html_errors
async def contract_role_take(request: Request, code: str, login: str, w: WebUser = Depends(web_user),
                             c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    await _posted_form(request, w)  # the CSRF check
    await roles.take_away(c, w.principal, code, login)
    return RedirectResponse(base_path(request) + "/cabinet/contracts", status_code=303)


# ---- hourly profile --------------------------------------------------------------------------
async def _profile_page(request: Request, code: str, w: WebUser, c, result=None, status_code: int = 200):
    q = request.query_params
    today = _today(w)
    day = _day(q.get("day"), "day")
    month = day.replace(day=1) if day else _month(q.get("month"), today)
    mp = await profile.month(c, w.principal, code, month, w.lang)
    days = mp.profile.days()
    if day:
        labels = [f"{h:02d}-{h + 1:02d}" for h in range(24)]
        vals = [None if mp.value(day, h) is None else float(mp.value(day, h)) for h in range(24)]
    else:
        labels = [d.strftime("%d.%m") for d in days]
        vals = [None if mp.day_total(d) is None else float(mp.day_total(d)) for d in days]
    chart = bar_chart(labels, [Series("Расход, кВт·ч" if w.lang == "ru" else "Consumption, kWh", vals)],
                      unit="кВт·ч" if w.lang == "ru" else "kWh", css_id="profile-chart", lang=w.lang, width=1200,
                      height=240)
    return render(request, "cabinet_profile.html", await _ctx(c, w) | {
        "mp": mp, "p": mp.point, "day": day, "month": month, "days": days, "chart": chart, "result": result,
        "prev_month": (month - timedelta(days=1)).replace(day=1), "next_month": next_month(month)},
        w, status_code=status_code)


@router.get("/cabinet/points/{code}/profile")
@html_errors
async def profile_page(request: Request, code: str, w: WebUser = Depends(web_user),
                       c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    return await _profile_page(request, code, w, c)


@router.get("/cabinet/points/{code}/profile.xlsx")
@html_errors
async def profile_download(request: Request, code: str, month: str = "", w: WebUser = Depends(web_user),
                           c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    name, body = await profile.download(c, w.principal, code, _month(month, _today(w)))
    return _attachment(name, body)


@router.post("/cabinet/points/{code}/profile")
@html_errors
async def profile_upload(request: Request, code: str, w: WebUser = Depends(web_user),
                         c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    _, data = await _posted_file(request, w)
    if not data:
        raise Invalid("file", "choose a file", "выберите файл")
    res = await profile.upload(c, w.principal, code, data)
    return await _profile_page(request, code, w, c, res, status_code=200 if res.ok else 422)


# ---- consumption -----------------------------------------------------------------------------
async def _consumption(request: Request, w: WebUser, c) -> tuple[list[cc.PointConsumption], dict]:
    q = request.query_params
    today = _today(w)
    gran = q.get("granularity") or "day"
    if gran not in ("day", "month"):
        raise Invalid("granularity", "granularity: day or month", "разбивка: по дням или по месяцам")
    if gran == "day":
        start = _month(q.get("month"), today)
        end = next_month(start)
    else:
        try:
            year = int(q.get("year") or today.year)
        except ValueError:
            raise Invalid("year", "year: a number", "год: число") from None
        if not 2000 <= year <= 2100:
            raise Invalid("year", "year: 2000..2100", "год: от 2000 до 2100")
        start, end = date(year, 1, 1), date(year + 1, 1, 1)
    meter = q.get("meter") or None
    pts = await points.points(c, w.principal, points.PointFilter(meter=meter), w.lang)
    if meter and not pts:
        await points.point(c, w.principal, meter)  # raises «not found»
    out = [await cc.of_listed_point(c, w.principal, p, gran, start, end) for p in pts]
    return out, {"granularity": gran, "start": start, "end": end, "meter": meter or ""}


def _consumption_chart(pc: cc.PointConsumption, fmt: str, lang: str) -> str:
    """Расход and, for electricity, Расход интервальный side by side."""
    ru = lang == "ru"
    series = [Series("Расход" if ru else "Consumption", [f.integral for f in pc.figures])]
    if pc.point.resource in ("electricity", "unknown"):
        series.append(Series("Расход интервальный" if ru else "Interval", [f.interval for f in pc.figures], "#e08a1e"))
    return bar_chart([f.bucket.strftime(fmt) for f in pc.figures], series, unit=units.unit(pc.point.resource, None, lang),
                     css_id=f"chart-{pc.point.code}", lang=lang, width=1200, height=220)


@router.get("/cabinet/consumption")
@html_errors
async def consumption_page(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    pcs, sel = await _consumption(request, w, c)
    fmt = "%d.%m" if sel["granularity"] == "day" else "%m.%Y"
    charts = {pc.point.code: _consumption_chart(pc, fmt, w.lang) for pc in pcs}
    return render(request, "cabinet_consumption.html", await _ctx(c, w) | {
        "pcs": pcs, "sel": sel, "charts": charts, "all_points": await points.points(c, w.principal, lang=w.lang)}, w)


@router.get("/cabinet/consumption.xlsx")
@html_errors
async def consumption_download(request: Request, w: WebUser = Depends(web_user),
                               c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    pcs, sel = await _consumption(request, w, c)
    pcs = [pc for pc in pcs if w.principal.may_on(pc.point.account_id, "documents")]
    if not pcs:
        w.principal.require_on(None, "documents")
    blocks = [b for pc in pcs for b in cdoc.consumption(pc, w.lang).blocks]
    title = "Расход по точкам учёта" if w.lang == "ru" else "Consumption by metering point"
    doc = documents.Document(title, [], blocks, name=f"consumption_{sel['start']:%Y%m%d}")
    return _attachment(f"{doc.name}.xlsx", documents.to_xlsx(doc))


# ---- history ---------------------------------------------------------------------------------
async def _history(request: Request, w: WebUser, c):
    q = request.query_params
    today = _today(w)
    start = _day(q.get("start"), "start") or today.replace(day=1) - timedelta(days=90)
    end = _day(q.get("end"), "end") or today
    if end < start:
        raise Invalid("end", "the period ends before it starts", "конец периода раньше начала")
    meter = q.get("meter") or None
    if meter:
        await points.point(c, w.principal, meter)
    rows = await points.history(c, w.principal, datetime.combine(start, time(), w.tz),
                                datetime.combine(end + timedelta(days=1), time(), w.tz), meter, w.lang)
    return rows, {"start": start, "end": end, "meter": meter or ""}


@router.get("/cabinet/history")
@html_errors
async def history_page(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    rows, sel = await _history(request, w, c)
    return render(request, "cabinet_history.html", await _ctx(c, w) | {
        "rows": rows, "sel": sel, "all_points": await points.points(c, w.principal, lang=w.lang)}, w)


@router.get("/cabinet/history.xlsx")
@html_errors
async def history_download(request: Request, w: WebUser = Depends(web_user), c: psycopg.AsyncConnection = Depends(conn)):
    _w(w)
    rows, sel = await _history(request, w, c)
    accs = {a["code"] for a in await accounts.accounts_of(c, w.principal)
            if w.principal.may_on(a["id"], "documents")}
    if not accs:
        w.principal.require_on(None, "documents")
    rows = [r for r in rows if r.account in accs]
    doc = cdoc.history(rows, sel["start"], sel["end"], w.tz, w.lang)
    return _attachment(f"{doc.name}.xlsx", documents.to_xlsx(doc))
