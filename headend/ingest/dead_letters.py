"""Payloads that failed validation go whole to `dead_letters` with the reason; this module
also says, for operators, what such a payload was and why it was refused, in a sentence
(the reason as stored is the decoder's own words, for engineers)."""
from __future__ import annotations

import json
import re
from collections.abc import Callable

import psycopg


async def store(conn: psycopg.AsyncConnection, items: list[tuple[str, str | None, bytes, str]]) -> None:
    if not items:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO dead_letters (topic, gateway_id, payload, reason) VALUES (%s, %s, %s, %s)", items
        )


_FIELDS = {"meter_id": ("номер прибора учёта", "meter id"), "obis": ("канал", "channel"),
           "kind": ("вид значения", "value kind"), "value": ("значение", "value"), "unit": ("единица", "unit"),
           "received_at": ("время получения", "receive time"), "meter_time": ("время прибора учёта", "meter time"),
           "quality": ("качество", "quality"), "period_s": ("длительность интервала", "interval length"),
           "seq": ("номер сообщения", "message number"), "sent_at": ("время отправки", "send time"),
           "gateway_id": ("шлюз", "gateway"), "v": ("версия схемы", "schema version"),
           "values": ("список значений", "values"), "meters": ("состояния приборов учёта", "meter states"),
           "online": ("признак связи", "online flag"), "at": ("время", "time"), "archive": ("архив", "archive"),
           "last_contact": ("последний сеанс связи", "last contact"), "id": ("номер команды", "command id")}
_TYPES = {"str": ("строка", "text"), "float": ("число", "number"), "int": ("целое число", "integer"),
          "datetime": ("время", "time"), "array": ("список", "list"), "object": ("объект", "object"),
          "null": ("пусто", "nothing"), "bool": ("да/нет", "yes/no")}
_KINDS = {"data": ("данные", "data"), "state": ("состояние шлюза", "gateway state"),
          "health": ("самочувствие шлюза", "gateway health"), "cmd/result": ("ответ на команду", "command result")}
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`")


def _field(name: str, lang: str) -> str:
    pair = _FIELDS.get(name)
    return (pair[lang == "en"] if pair else name)


def _where(reason: str, lang: str) -> str:
    """`$.values[3].value` → «значение № 4, поле «значение»»."""
    m = _AT.search(reason)
    if not m:
        return ""
    en = lang == "en"
    out = []
    items = {"values": ("значение", "value"), "meters": ("состояние прибора учёта", "meter state")}
    for name, index in re.findall(r"(\w+)(?:\[(\d+)\])?", m.group("path")):
        if index and name in items:
            out.append(f"{items[name][en]} № {int(index) + 1}" if not en else f"{items[name][en]} no. {int(index) + 1}")
        else:
            out.append(f"поле «{_field(name, lang)}»" if not en else f"field {_field(name, lang)}")
    return ", ".join(out)


def _problem(reason: str, lang: str) -> str:
    en = lang == "en"
    text = _AT.sub("", reason.split(": ", 1)[1] if re.match(r"^\w+: ", reason) else reason)
    rules: list[tuple[str, Callable[[re.Match], tuple[str, str]]]] = [
        (r"not valid JSON", lambda m: ("сообщение не в формате JSON", "not JSON")),
        (r"not valid UTF-8", lambda m: ("текст не в кодировке UTF-8", "text not in UTF-8")),
        (r"schema version (\d+) is not supported",
         lambda m: (f"версия схемы {m.group(1)} не поддерживается", f"schema version {m.group(1)} not supported")),
        (r"Expected `datetime` with a timezone", lambda m: ("время без часового пояса", "time without a zone")),
        (r"Expected `str` matching regex", lambda m: ("значение не по формату", "value not in the format")),
        (r"Expected `str` of length", lambda m: ("строка пустая или слишком длинная", "text empty or too long")),
        (r"Expected `(\w+)[^`]*`, got `(\w+)`",
         lambda m: (f"ожидалось: {_TYPES.get(m.group(1), (m.group(1),) * 2)[0]}, получено: "
                    f"{_TYPES.get(m.group(2), (m.group(2),) * 2)[0]}",
                    f"expected {_TYPES.get(m.group(1), (m.group(1),) * 2)[1]}, got "
                    f"{_TYPES.get(m.group(2), (m.group(2),) * 2)[1]}")),
        (r"Object missing required field `(\w+)`",
         lambda m: (f"нет обязательного поля «{_field(m.group(1), 'ru')}»",
                    f"required field {_field(m.group(1), 'en')} missing")),
        (r"Invalid enum value '([^']*)'",
         lambda m: (f"недопустимое значение «{m.group(1)[:40]}»", f"value “{m.group(1)[:40]}” not allowed")),
        (r"interval value needs period_s", lambda m: ("у интервального значения не указана длительность",
                                                      "interval value without its length")),
        (r"differs from the topic", lambda m: ("шлюз в сообщении не совпадает со шлюзом в теме",
                                               "the gateway in the message differs from the topic's")),
        (r"database refused", lambda m: ("база данных не приняла значения (например, число вне допустимого "
                                         "диапазона)", "the database refused the values (e.g. a number out of "
                                                       "range)")),
        (r"is not ingested", lambda m: ("сообщение такого вида не принимается", "messages of this kind are not "
                                                                               "taken")),
        (r"did not send", lambda m: ("ответ на команду, которую головная система не отправляла",
                                     "an answer to a command the head-end never sent")),
        (r"^topic ", lambda m: ("тема сообщения не по договорённости (<корень>/v1/<шлюз>/<вид>)",
                                "topic not as agreed (<root>/v1/<gateway>/<kind>)")),
    ]
    for pat, say in rules:
        m = re.search(pat, text)
        if m:
            return say(m)[en]
    return "сообщение не соответствует договорённости о формате" if not en else "message not as the contract says"


def why(reason: str, lang: str = "ru") -> str:
    """The refusal as a sentence: «значение № 4, поле «значение»: ожидалось: число, получено: строка»."""
    where = _where(reason, lang)
    problem = _problem(reason, lang)
    return f"{where}: {problem}" if where else problem


def what(topic: str, payload: bytes, lang: str = "ru", visible: Callable[[str], bool] | None = None
         ) -> tuple[str, list[str]]:
    """What the payload was, and the meter codes it names that `visible` lets through."""
    en = lang == "en"
    kind = next((k for k in _KINDS if topic.endswith("/" + k)), None)
    label = _KINDS[kind][en] if kind else ("сообщение" if not en else "message")
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return (f"{label}: {len(payload)} байт, не читается" if not en
                else f"{label}: {len(payload)} bytes, unreadable"), []
    if not isinstance(obj, dict):
        return label, []
    meters: list[str] = []
    if kind == "data" and isinstance(obj.get("values"), list):
        vals = obj["values"]
        codes = {v.get("meter_id") for v in vals if isinstance(v, dict) and isinstance(v.get("meter_id"), str)}
        meters = sorted(c for c in codes if visible is None or visible(c))
        return (f"{label}: значений — {len(vals)}" if not en else f"{label}: {len(vals)} values"), meters
    if kind == "cmd/result":
        return f"{label} {str(obj.get('id', ''))[:64]}".strip(), meters
    return label, meters
