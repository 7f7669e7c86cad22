"""The commands an operator can give, what each needs, and how they read in Russian.

A command goes to one meter (through its gateway) or to a whole gateway. Which role may
give it is the permission table's (`auth/permissions.ALLOWED`); this module only says
which action each command is.
"""
from __future__ import annotations

from dataclasses import dataclass

from askue.headend.auth.permissions import Action


@dataclass(frozen=True)
class CommandKind:
    name: str  # the contract's Command.cmd
    title_ru: str
    title_en: str
    targets: frozenset[str]  # "meter", "gateway"
    confirm: bool = False  # the sender must confirm explicitly (the relay)
    timeout_s: float | None = None  # the gateway's own limit for carrying it out (None: its default)

    def title(self, lang: str) -> str:
        return self.title_ru if lang != "en" else self.title_en

    def action(self, target: str) -> Action:
        if target == "gateway":
            return Action.COMMANDS_GATEWAY
        return Action.COMMANDS_RELAY if self.confirm else Action.COMMANDS_SEND


_METER = frozenset({"meter"})
KINDS: dict[str, CommandKind] = {k.name: k for k in (
    CommandKind("poll_now", "Опросить сейчас", "Poll now", frozenset({"meter", "gateway"}), timeout_s=600),
    CommandKind("read_profile", "Прочитать профиль за период", "Read the load profile for a range", _METER,
                timeout_s=900),
    CommandKind("read_clock", "Проверить часы", "Read the clock", _METER),
    CommandKind("sync_clock", "Синхронизировать часы", "Synchronise the clock", _METER),
    CommandKind("relay_disconnect", "Отключить нагрузку", "Disconnect the load (relay off)", _METER, confirm=True),
    CommandKind("relay_reconnect", "Включить нагрузку", "Reconnect the load (relay on)", _METER, confirm=True),
    CommandKind("reload_config", "Перечитать конфигурацию", "Reload the configuration", frozenset({"gateway"})),
)}

STATES = ("pending", "sent", "done", "failed", "expired")
STATE_TITLES = {"pending": ("ожидает отправки", "waiting to be sent"), "sent": ("отправлена, ждём ответа",
                                                                                "sent, awaiting the answer"),
                "done": ("выполнена", "done"), "failed": ("не выполнена", "failed"),
                "expired": ("срок истёк", "expired")}
OPEN_STATES = ("pending", "sent")


def kinds_for(target: str) -> list[CommandKind]:
    return [k for k in KINDS.values() if target in k.targets]
