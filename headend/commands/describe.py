"""A command's outcome as an operator reads it: a sentence from the gateway's result
(or error), in Russian or English. The gateway's own words stay available as `detail`
for an engineer; they are never the sentence itself."""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

# the gateway's error prefixes (drivers/errors.py class names, gateway/commands.py texts)
_ERRORS: tuple[tuple[re.Pattern, str, str], ...] = tuple((re.compile(p, re.I), ru, en) for p, ru, en in (
    (r"^Expired:", "срок команды истёк до того, как шлюз её получил; не выполнена",
     "the command had expired when the gateway got it; not carried out"),
    (r"^Unsupported", "прибор учёта не поддерживает эту команду", "the meter does not support this command"),
    (r"^(MeterTimeout|timed out)", "прибор учёта не ответил вовремя", "the meter did not answer in time"),
    (r"is not configured on this gateway", "прибор учёта не настроен на этом шлюзе",
     "the meter is not configured on this gateway"),
    (r"^IdentityMismatch", "заводской номер прибора учёта не совпадает с настроенным",
     "the meter's serial number differs from the configured one"),
    (r"^AuthError", "прибор учёта отклонил пароль", "the meter refused the password"),
    (r"^(FrameError|ProtocolError|CrcError)", "сбой обмена с прибором учёта", "the exchange with the meter failed"),
    (r"(ConfigError|config)", "ошибка в конфигурации шлюза", "the gateway's configuration has an error"),
    (r"^Command:", "шлюз не принял команду (неверный формат)", "the gateway refused the command as malformed"),
))


def error_sentence(error: str | None, lang: str) -> str:
    if not error:
        return ""
    for pat, ru, en in _ERRORS:
        if pat.search(error):
            return ru if lang != "en" else en
    return "шлюз сообщил об ошибке" if lang != "en" else "the gateway reported an error"


def _num(v: float, digits: int = 1) -> str:
    return f"{v:+.{digits}f}".replace(".", ",")


def _time(text: Any, tz: tzinfo) -> str:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(tz).strftime("%d.%m.%Y %H:%M:%S")
    except ValueError:
        return ""


def _poll(result: Mapping[str, Any], lang: str) -> str:
    meters = result.get("meters") or {}
    failed = sorted(m for m, r in meters.items() if isinstance(r, dict) and "error" in r)
    values = sum(int(r.get("values", 0)) for r in meters.values() if isinstance(r, dict) and "error" not in r)
    if len(meters) == 1 and not failed:
        return f"опрошен, получено значений: {values}" if lang != "en" else f"polled, values read: {values}"
    if len(meters) == 1:
        err = error_sentence(next(iter(meters.values())).get("error"), lang)
        return f"опрос не удался: {err}" if lang != "en" else f"the poll failed: {err}"
    ok = len(meters) - len(failed)
    if lang == "en":
        s = f"meters polled: {ok} of {len(meters)}, values read: {values}"
        return s + (f"; no answer from {', '.join(failed[:10])}" if failed else "")
    s = f"опрошено приборов: {ok} из {len(meters)}, получено значений: {values}"
    return s + (f"; не ответили: {', '.join(failed[:10])}" if failed else "")


def _reload(result: Mapping[str, Any], lang: str) -> str:
    ch = result.get("changes") or {}
    restart = result.get("restart_needed") or []
    names_ru = {"meters_added": "добавлено приборов", "meters_removed": "удалено приборов",
                "meters_changed": "изменено приборов", "buses_added": "добавлено линий",
                "buses_removed": "удалено линий", "buses_restarted": "перезапущено линий"}
    parts = [f"{names_ru.get(k, k) if lang != 'en' else k.replace('_', ' ')}: {len(v)}" for k, v in ch.items()]
    if lang == "en":
        s = "configuration reloaded: " + (", ".join(parts) if parts else "no changes")
        return s + (f"; restart needed for: {', '.join(restart)}" if restart else "")
    s = "конфигурация перечитана: " + (", ".join(parts) if parts else "изменений нет")
    return s + (f"; для части изменений нужен перезапуск шлюза ({', '.join(restart)})" if restart else "")


def result_sentence(command: str, state: str, result: Mapping[str, Any] | None, error: str | None,
                    sent: bool, tz: tzinfo, lang: str = "ru") -> str:
    """What became of a command, or what it waits for."""
    en = lang == "en"
    if state == "pending":
        return "ждёт, когда шлюз выйдет на связь" if not en else "waiting for the gateway to come online"
    if state == "sent":
        return "передана шлюзу, ждём ответа" if not en else "handed to the gateway, awaiting its answer"
    if state == "expired":
        if sent:
            return "шлюз не ответил до истечения срока" if not en else "the gateway did not answer in time"
        return ("шлюз не вышел на связь до истечения срока; команда не отправлена" if not en
                else "the gateway did not come online in time; the command was not sent")
    if state == "failed":
        return error_sentence(error, lang)
    r = result or {}
    if command == "poll_now":
        return _poll(r, lang)
    if command == "read_profile":
        n = int(r.get("values", 0))
        return f"прочитано интервалов профиля: {n}" if not en else f"profile intervals read: {n}"
    if command in ("read_clock", "sync_clock"):
        drift = r.get("drift_s")
        when = _time(r.get("meter_time"), tz)
        d = f"{_num(float(drift))} с" if isinstance(drift, int | float) else "—"
        if command == "sync_clock":
            return (f"часы синхронизированы; расхождение после синхронизации {d}" if not en
                    else f"clock synchronised; drift afterwards {d.replace(' с', ' s')}")
        return (f"часы прибора учёта: {when}, расхождение с часами шлюза {d}" if not en
                else f"meter clock {when}, drift from the gateway's clock {d.replace(' с', ' s')}")
    if command == "relay_disconnect":
        return "нагрузка отключена (реле разомкнуто)" if not en else "load disconnected (relay open)"
    if command == "relay_reconnect":
        return "нагрузка включена (реле замкнуто)" if not en else "load reconnected (relay closed)"
    if command == "reload_config":
        return _reload(r, lang)
    return "выполнена" if not en else "done"
