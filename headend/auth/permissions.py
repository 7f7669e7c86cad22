"""Who may see and do what: one principal, one organisation scope, one table of actions.

A principal is whoever acts: an API token, a logged-in user, a CLI run, the head-end
itself. Its organisations limit what it sees; anything outside answers as if it did
not exist (services raise NotFound). Its role decides what it may change: the table
ALLOWED below is the only place that says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from askue.headend.errors import Forbidden

ROLES = ("admin", "dispatcher", "org_admin", "viewer", "billing")
USER_ROLES = ("admin", "dispatcher", "org_admin", "viewer")  # billing systems get API tokens, not logins
ROLE_TITLES = {"admin": ("Администратор", "Administrator"), "dispatcher": ("Диспетчер", "Dispatcher"),
               "org_admin": ("Администратор организации", "Organisation admin"),
               "viewer": ("Наблюдатель", "Viewer"), "billing": ("Биллинг (API)", "Billing (API)")}


class Action(StrEnum):
    EVENTS_ACT = "events.act"  # acknowledge, resolve abnormal events
    READINGS_ENTER = "readings.enter"  # manual and consumer readings, the integral template
    VALUES_CORRECT = "values.correct"  # change a stored value with a reason
    THRESHOLDS_SET = "vee.thresholds.set"
    BILLING_CLOSE = "billing.close"  # close and recalculate billing periods
    BILLING_IMPORT = "billing.import"  # 80020 and hourly profile files
    BILLING_WINDOW = "billing.window"  # the reading acceptance window
    USERS_MANAGE = "users.manage"
    TOKENS_CREATE = "tokens.create"
    REGISTRY_EDIT = "registry.edit"  # houses, accounts, gateways, meters, bindings, dated parameters
    REGISTRY_ORGS = "registry.organisations"  # create organisations
    REGISTRY_ACTS = "registry.acts"  # install, exchange and removal acts
    REGISTRY_CONFIRM = "registry.confirm"  # confirm a reported serial, release or discard quarantined values
    ALERTS_SUBSCRIBE = "alerts.subscribe"  # one's own alert subscriptions by e-mail
    ALERTS_WEBHOOK = "alerts.webhook"  # alert subscriptions that POST to a URL (the head-end calls out)
    COMMANDS_SEND = "commands.send"  # poll a meter now, read its profile or clock, sync its clock
    COMMANDS_RELAY = "commands.relay"  # switch a meter's load relay off or on
    COMMANDS_GATEWAY = "commands.gateway"  # gateway-wide: poll every meter, reload the config


# Roles a user manager may give: an organisation's admin manages its own people only.
GRANTABLE: dict[str, tuple[str, ...]] = {"admin": USER_ROLES, "org_admin": ("org_admin", "viewer")}

ALLOWED: dict[Action, frozenset[str]] = {
    Action.EVENTS_ACT: frozenset({"admin", "dispatcher", "org_admin"}),
    Action.READINGS_ENTER: frozenset({"admin", "dispatcher", "org_admin", "billing"}),
    Action.VALUES_CORRECT: frozenset({"admin", "dispatcher", "org_admin"}),
    Action.THRESHOLDS_SET: frozenset({"admin", "dispatcher", "org_admin"}),
    Action.BILLING_CLOSE: frozenset({"admin", "billing"}),
    Action.BILLING_IMPORT: frozenset({"admin", "billing", "org_admin"}),
    Action.BILLING_WINDOW: frozenset({"admin", "billing", "org_admin"}),
    Action.USERS_MANAGE: frozenset({"admin", "org_admin"}),
    Action.TOKENS_CREATE: frozenset({"admin"}),
    Action.REGISTRY_EDIT: frozenset({"admin", "org_admin"}),
    Action.REGISTRY_ORGS: frozenset({"admin"}),
    Action.REGISTRY_ACTS: frozenset({"admin", "org_admin", "dispatcher"}),
    Action.REGISTRY_CONFIRM: frozenset({"admin", "org_admin", "dispatcher"}),
    Action.ALERTS_SUBSCRIBE: frozenset({"admin", "dispatcher", "org_admin", "viewer"}),
    Action.ALERTS_WEBHOOK: frozenset({"admin", "dispatcher", "org_admin"}),
    Action.COMMANDS_SEND: frozenset({"admin", "dispatcher", "org_admin"}),
    Action.COMMANDS_RELAY: frozenset({"admin", "dispatcher", "org_admin"}),
    # a gateway may serve several organisations' meters: its own operations stay with the operator
    Action.COMMANDS_GATEWAY: frozenset({"admin", "dispatcher"}),
}


@dataclass(frozen=True)
class Scope:
    """The organisations a principal sees (None: all), as a SQL condition built here only."""

    org_ids: frozenset[int] | None

    @property
    def everything(self) -> bool:
        return self.org_ids is None

    def sees(self, org_id: int | None) -> bool:
        return self.org_ids is None or (org_id is not None and org_id in self.org_ids)

    def sql(self, column: str) -> tuple[str, list]:
        """`column` (an organisation id) limited to the scope, with positional (%s) parameters."""
        if self.org_ids is None:
            return "TRUE", []
        return f"{column} = ANY(%s)", [sorted(self.org_ids)]

    def named(self, column: str, name: str = "scope_orgs") -> tuple[str, dict]:
        """The same condition with a named parameter (%(name)s)."""
        if self.org_ids is None:
            return "TRUE", {}
        return f"{column} = ANY(%({name})s)", {name: sorted(self.org_ids)}


@dataclass(frozen=True)
class Principal:
    name: str  # token name or login: the "who" of the audit log
    role: str
    org_ids: frozenset[int] | None  # None: every organisation
    ip: str | None = None  # where the request came from, when there was one

    @property
    def scope(self) -> Scope:
        return Scope(self.org_ids)

    def sees_org(self, org_id: int | None) -> bool:
        return self.scope.sees(org_id)

    def may(self, action: Action) -> bool:
        return self.role in ALLOWED[action]

    def require(self, action: Action) -> None:
        if not self.may(action):
            roles = ", ".join(sorted(ALLOWED[action]))
            raise Forbidden(f"role {self.role!r} may not do this ({action}); it needs one of: {roles}",
                            f"роль «{ROLE_TITLES.get(self.role, (self.role,))[0]}» не может выполнить это действие")
